"""labsim: the lab's simulation of an OpenBSD vmm host (vmd, vmctl and friends)."""
