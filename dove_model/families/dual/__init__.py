"""The dual family: a CLIP-style dual encoder of pretrained towers with trained heads."""
