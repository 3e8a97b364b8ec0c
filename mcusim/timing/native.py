"""The block hook's machine code, kept between processes.

Numba compiles the hook (hook.py) as a cfunc once per hook source, Numba version and host CPU; its
object code goes to the cache and every run links it with llvmlite's JIT. A run therefore never imports
Numba: loading even a cached function through Numba builds its whole compiler context first, which
cost more than a second per `mcusim run`. Nothing in the object is tied to a process (the address of
`uc_emu_stop` is passed in the state array), so it can be reused as is.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import platform
from functools import lru_cache
from pathlib import Path

import llvmlite.binding as llvm
from unicorn.unicorn_py3.unicorn import uclib

from ..disk_cache import cached

#: address of Unicorn's uc_emu_stop, which the hook calls when the cycle budget is spent
UC_EMU_STOP_ADDRESS = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value

#: what a Numba cfunc links against besides CPython's API (resolved from the process): the GIL helpers
#: of its error path (an exception inside the hook is reported as unraisable), and the NRT release that
#: `carray` views never reach because they own no memory.
_NUMBA_RUNTIME = """
declare i32 @PyGILState_Ensure()
declare void @PyGILState_Release(i32)
declare void @llvm.trap()
define void @numba_gil_ensure(ptr %state) {
  %s = call i32 @PyGILState_Ensure()
  store i32 %s, ptr %state
  ret void
}
define void @numba_gil_release(ptr %state) {
  %s = load i32, ptr %state
  call void @PyGILState_Release(i32 %s)
  ret void
}
define void @NRT_MemInfo_call_dtor(ptr %meminfo) {
  call void @llvm.trap()
  unreachable
}
"""

_HOOK_SOURCES = ("hook.py", "state.py")
_engines = []            # the JIT engines own the code: they live as long as the process


def _target_machine():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3,
        codemodel="jitdefault")


def _cache_key() -> tuple[str, ...]:
    here = Path(__file__).parent
    source = hashlib.sha256(b"".join((here / name).read_bytes() for name in _HOOK_SOURCES)).hexdigest()
    return ("block-hook", source, importlib.metadata.version("numba"), importlib.metadata.version("llvmlite"),
            llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten(),
            platform.python_version())


def _compile() -> tuple[str, bytes, str]:
    """Numba's cfunc for the hook, as (symbol name, object code, the code's SHA-256)."""
    import numba as nb

    from . import hook
    cfunc = nb.cfunc(hook.SIGNATURE, nopython=True)(hook.block_hook)
    obj = _target_machine().emit_object(llvm.parse_assembly(cfunc.inspect_llvm()))
    return cfunc.native_name, obj, hashlib.sha256(obj).hexdigest()


def _intact(entry) -> bool:
    """LLVM's loader crashes on damaged object code, so a cache entry is checked before it is linked."""
    return (isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[1], bytes)
            and hashlib.sha256(entry[1]).hexdigest() == entry[2])


@lru_cache(maxsize=None)
def block_hook_address() -> int:
    """Address of the native block hook, compiled on first use and linked from the cache after that."""
    name, obj, _ = cached("native", _cache_key(), _compile, _intact)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(_NUMBA_RUNTIME), _target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    _engines.append(engine)
    return engine.get_function_address(name)
