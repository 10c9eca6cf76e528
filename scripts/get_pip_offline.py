"""Offline stand-in for the get-pip.py script that ansible-test downloads.

ansible-test bootstraps pip into each of its virtual environments by running a
cached get-pip script (~/.ansible/test/cache/get_pip_<version>.py). The
download host is not reachable here, so this script takes its place: it
installs pip from the interpreter's own ensurepip wheel, then lets that pip
install the exact packages ansible-test asked for (pip==X) from the package
index that pip is configured to use.
"""
import subprocess
import sys


def main():
    # In a child process: ensurepip.bootstrap() points PIP_CONFIG_FILE at /dev/null in its own
    # process, which would hide the machine's pip configuration (certificates, mirrors) from pip.
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'])
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)


if __name__ == '__main__':
    main()
