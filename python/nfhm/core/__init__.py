"""nfhm's compute library, usable from a notebook without the RPC layer: model families and
their loading (model.py, efficientnet_lite.py, openclip_tower.py, pixels.py, model_spec.py),
partial fine-tuning (freeze.py), PartialFC_V2 and margin losses, transforms and image decoding, precision, one training step and the training session,
embedding shards and the contract's table layouts, and the ranks of a torchrun world. It
imports nothing from nfhm.methods or nfhm.rpc.
"""
