"""Process-wide tuning, only when the program's author asks for it.

Importing d2lblocks changes nothing in the process. ``tune_process()``
(also reachable as ``d2lblocks.backend.tune_process``) is the one place
where d2lblocks changes settings that belong to the whole process: the
host allocator of glibc and the number of BLAS threads. Both affect every
library in the process, which is why they are a choice, made once, at the
start of a program (a training script, the first cell of a notebook).
"""

import sys

__all__ = ["tune_process"]


def tune_process(keep_freed_memory=True, blas_threads=None):
    """Opt in to process-wide tuning for long training runs; returns
    whether anything was changed.

    Arguments:
        keep_freed_memory: ask glibc to keep freed memory for reuse instead
            of handing it back. A training step allocates and frees the
            same large temporaries every time; with glibc's defaults,
            arrays above 128 KiB are mapped afresh and the heap is trimmed,
            so every step faults those pages in again (measured: 200 page
            faults per step of the 784-256-10 MLP at batch 4096, a few
            percent of its time). Deep-learning frameworks pool their
            memory for the same reason. Does nothing without glibc.
        blas_threads: limit every BLAS library that ``threadpoolctl``
            finds in the process (NumPy's OpenBLAS, MKL, ...) to this many
            threads for the rest of the process; None leaves them alone. On a
            machine whose cores are shared with other work, one thread
            avoids OpenBLAS's waiting threads spinning through whole time
            slices, which can make a product of a few million
            multiply-adds take milliseconds instead of tenths of one. Needs
            ``threadpoolctl`` (``pip install threadpoolctl``).

    Raises:
        ValueError: ``blas_threads`` is not a positive integer.
        ImportError: ``blas_threads`` is given and threadpoolctl is missing.
    """
    changed = False
    if blas_threads is not None:
        if isinstance(blas_threads, bool) or not isinstance(blas_threads, int) \
                or blas_threads < 1:
            raise ValueError(f"tune_process(): blas_threads must be a "
                             f"positive int or None, got {blas_threads!r}")
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            raise ImportError("tune_process(blas_threads=...) needs "
                              "threadpoolctl: pip install threadpoolctl") from None
        # Not used as a context: the limits stay for the process.
        threadpool_limits(limits=blas_threads, user_api="blas")
        changed = True
    if keep_freed_memory:
        changed = _keep_freed_memory() or changed
    return changed


def _keep_freed_memory():
    """glibc's ``mallopt``: mapped and trimmed only above 32 and 512 MiB."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):      # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20) and
                mallopt(m_trim_threshold, 512 << 20))
