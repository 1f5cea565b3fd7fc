"""kiln: image as code. Builds machine images from Packer templates."""

__version__ = "0.1.0"

#: The Packer release whose templates, flags and output kiln reproduces. `min_packer_version`,
#: `required_version` and the `packer_version` template function compare against this.
PACKER_COMPATIBLE_VERSION = "1.16.0"
