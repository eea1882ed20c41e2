"""Training sparse (and hybrid) encoders by distillation: config, losses, sparsity regularisers, data, trainer.

Heavy imports (torch, pyarrow) happen inside the modules; ``lsr.train`` itself imports nothing heavy.
"""
