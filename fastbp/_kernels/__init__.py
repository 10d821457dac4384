"""The compiled layer: every module of fastbp that holds Numba kernels (all made by
:func:`fastbp._jit.kernel`, the one home of the Numba options). Nothing here imports the Python
layer (validation, buffers, dispatch), which calls these kernels on buffers it owns.

- :mod:`~fastbp._kernels.vexp`: ``exp`` and ``log1p`` as polynomials the loops vectorize;
- :mod:`~fastbp._kernels.layers`: the scalar activations and their derivatives by integer code,
  and the per-layer edge loops (bias gradient, delta scaling, sample and column remainders);
- :mod:`~fastbp._kernels.forward_tiles`: the register-tiled forward layer product with its
  activation epilogue, serial and threaded, and its twins per mode;
- :mod:`~fastbp._kernels.backward_tiles`: the register-tiled delta recursion and weight
  gradient, serial and threaded;
- :mod:`~fastbp._kernels.checks`: argument and finiteness checks, the overflow bound of the
  weight gradient and its FMA-free recomputation;
- :mod:`~fastbp._kernels.workspace`: the workspace layout, its sizes, and the thread blocks;
- :mod:`~fastbp._kernels.single_sample`: the fused B = 1 path for tiny networks;
- :mod:`~fastbp._kernels.drivers`: the whole-network forward, loss, loss_and_grad and finite
  difference drivers and their serial twins (public as :mod:`fastbp.kernels`);
- :mod:`~fastbp._kernels.plain`: the plain tier's one-layer kernels and activation epilogues
  (driven from Python by :mod:`fastbp._plain`);
- :mod:`~fastbp._kernels.optimizer_steps`: the SGD and Adam updates, whole-vector and per layer
  (the classes are :mod:`fastbp.optim`);
- :mod:`~fastbp._kernels.train_rows`, :mod:`~fastbp._kernels.train_defer`: per-sample training
  rows, and the deferred first-layer updates of plain per-sample SGD;
- :mod:`~fastbp._kernels.train_steps`: the training loops of :meth:`fastbp.MLP.fit` (many steps
  per call; their per-path and per-tier twins are made in :mod:`fastbp.train`).
"""
