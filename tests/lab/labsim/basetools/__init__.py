"""Stand-ins for the OpenBSD base tools the host roles touch (rcctl, sysctl, pfctl, ifconfig,
MAKEDEV, httpd, dhcpd, sensorsd). Each keeps its state under $VMM_LAB_ROOT and follows the
OpenBSD manual page of the tool it stands in for; see tests/lab/README.md for what they leave out."""
