"""Training images synthesised on the fly from tissue label maps (SynthSeg-style domain randomisation).

Every training slab gets a fresh random contrast, so a network can only learn the brain's shape and context:
``label_to_image.render_slabs`` is the generative chain (background blobs -> per-label contrast with sub-class
texture -> within-label noise -> in-plane blur -> normalisation); ``fields`` holds its random smooth fields and
``config.RenderConfig`` every random range.
"""
