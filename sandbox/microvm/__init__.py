"""The parts of the microVM backend (``sandbox/_microvm.py``) beside its host module: the host side
of the VM's port (``_wire.py``), and what goes into the VM's image (``build.sh`` makes it from
Debian's packages; ``init`` mounts the root and hands over to ``guest.py``, the guest server, which
runs inside the VM only and is never imported by the host)."""
