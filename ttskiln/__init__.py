"""ttskiln: a declarative build pipeline for text-to-speech models.

The package holds the logic; the Snakemake rules and scripts are thin layers over it.
"""

__version__ = "0.1.0"
