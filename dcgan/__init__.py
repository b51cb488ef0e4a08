"""dcgan: train, sample, evaluate and compare DCGANs with swappable upsampling.

Importing this package does not import TensorFlow; the modules that need it do.
"""

__version__ = "0.1.0"
