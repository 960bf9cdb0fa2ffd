"""`dove images`: build the pipeline image and the BentoML serving image with whichever
container engine is installed, from the package registries alone."""
