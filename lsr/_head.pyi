from typing import Annotated

import numpy
from numpy.typing import NDArray

from lsr._head import testing as testing


class Head:
    def __init__(self, weight: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], bias: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], center: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], basis: Annotated[NDArray[numpy.float64], dict(shape=(None, None), order='C', device='cpu', writable=False)]) -> None: ...

    @property
    def vocab(self) -> int: ...

    @property
    def dim(self) -> int: ...

    @property
    def screen_dim(self) -> int: ...

def max_logits(head: Head, x: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], offsets: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], threads: int, simd: bool) -> tuple: ...

def simd_available() -> bool: ...
