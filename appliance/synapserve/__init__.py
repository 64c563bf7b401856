"""synapserve: a Linux reverse proxy and load balancer.

The control plane (this package) configures and watches the native data
plane (native/, bound through cffi in synapserve.native).
"""

__version__ = "0.1.0"
