"""A pickle read without being run: pickletools.genops walks its opcodes while a light stack simulation (marks,
memo, tuples, lists, dicts) follows enough of the object graph to name every global it would import and to
rebuild the tensor entries of a torch state dict (name, dtype, shape, storage). Nothing is imported, called or
unpickled; what the simulation cannot follow becomes an opaque value or a problem string, never an exception.

The allowlist below (SAFE_GLOBALS) is torch's own `weights_only=True` allowlist (torch/_weights_only_unpickler.py,
`_get_allowed_globals`) plus a few data-only constructors, each named with its reason."""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickletools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from auditor.evidence.checkpoint import PickleGlobal

# storage class (torch.<Name>) → (dtype code, bytes per element); codes follow safetensors where it has one
STORAGE_DTYPES: dict[str, tuple[str, int]] = {
    "DoubleStorage": ("F64", 8), "FloatStorage": ("F32", 4), "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2), "LongStorage": ("I64", 8), "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2), "CharStorage": ("I8", 1), "ByteStorage": ("U8", 1), "BoolStorage": ("BOOL", 1),
    "ComplexFloatStorage": ("C64", 8), "ComplexDoubleStorage": ("C128", 16), "QInt8Storage": ("QI8", 1),
    "QUInt8Storage": ("QU8", 1), "QInt32Storage": ("QI32", 4), "QUInt4x2Storage": ("QU4X2", 1),
    "QUInt2x4Storage": ("QU2X4", 1), "UntypedStorage": ("U8", 1),
}
# torch.<dtype> globals (tensors whose storage is untyped name their dtype this way: _rebuild_tensor_v3)
TORCH_DTYPES: dict[str, tuple[str, int]] = {
    "float64": ("F64", 8), "float32": ("F32", 4), "float16": ("F16", 2), "bfloat16": ("BF16", 2),
    "int64": ("I64", 8), "int32": ("I32", 4), "int16": ("I16", 2), "int8": ("I8", 1), "uint8": ("U8", 1),
    "uint16": ("U16", 2), "uint32": ("U32", 4), "uint64": ("U64", 8), "bool": ("BOOL", 1),
    "complex32": ("C32", 4), "complex64": ("C64", 8), "complex128": ("C128", 16),
    "float8_e4m3fn": ("F8_E4M3", 1), "float8_e5m2": ("F8_E5M2", 1), "float8_e4m3fnuz": ("F8_E4M3FNUZ", 1),
    "float8_e5m2fnuz": ("F8_E5M2FNUZ", 1), "float8_e8m0fnu": ("F8_E8M0", 1), "float4_e2m1fn_x2": ("F4X2", 1),
    "qint8": ("QI8", 1), "quint8": ("QU8", 1), "qint32": ("QI32", 4), "quint4x2": ("QU4X2", 1),
    "quint2x4": ("QU2X4", 1),
}
_TORCH_EXTRA_DTYPES = ("bits16", "bits1x8", "bits2x4", "bits4x2", "bits8", "complex32",
                       *(f"uint{n}" for n in range(1, 8)), *(f"int{n}" for n in range(1, 8)))
_QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
             "per_channel_affine_float_qparams")
_TENSOR_TYPES = ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
_REBUILD = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
            "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
            "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass",
            "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor")

# Each of these constructs data and cannot reach arbitrary code by itself: a pickle can only call what it imports,
# so a payload needs a global outside this set (os.system, builtins.eval, subprocess.Popen, ...).
SAFE_GLOBALS: frozenset[str] = frozenset({
    # torch's weights_only allowlist (torch 2.13, _get_allowed_globals), verbatim
    "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device", "_codecs.encode",
    "builtins.bytearray", "builtins.set", "builtins.complex", "torch._tensor._rebuild_from_type_v2",
    "torch.storage.TypedStorage", "torch.storage.UntypedStorage",
    *(f"torch.{n}" for n in STORAGE_DTYPES if n != "UntypedStorage"),
    *(f"torch.cuda.{n}" for n in STORAGE_DTYPES if not n.startswith("Q") and n != "UntypedStorage"),
    *(f"torch.{n}" for n in TORCH_DTYPES), *(f"torch.{n}" for n in _TORCH_EXTRA_DTYPES),
    *(f"torch.{n}" for n in _QSCHEMES), *(f"torch._utils.{n}" for n in _REBUILD),
    *(f"{m}.{t}Tensor" for m in ("torch", "torch.cuda") for t in _TENSOR_TYPES),
    *(f"{m}.{t}Tensor" for m in ("torch.sparse", "torch.cuda.sparse") for t in _TENSOR_TYPES if t != "Bool"),
    # builtins.frozenset: protocol-2 pickles build a frozenset by calling it on a list, as they do builtins.set
    "builtins.frozenset",
    # numpy arrays and scalars (a numpy RNG state, a metric kept as an array): _reconstruct only allocates an
    # empty ndarray of a given (ndarray) subtype, dtype parses a type code, scalar copies bytes into a numpy
    # scalar; object arrays still pickle each element with its own globals, which are judged on their own
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
    "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    # torch.distributed.checkpoint's .metadata (torch 2.13 DCP, FSDP2 saves): dataclasses rebuilt by NEWOBJ + BUILD
    # (__new__ and a __dict__ update: no constructor runs) and the path the writer kept (a pure path object)
    *(f"torch.distributed.checkpoint.metadata.{n}" for n in (
        "Metadata", "TensorStorageMetadata", "TensorProperties", "ChunkStorageMetadata", "BytesStorageMetadata",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING")),
    "torch.distributed.checkpoint.filesystem._StorageInfo", "pathlib.PosixPath", "pathlib.WindowsPath",
    "pathlib.PurePosixPath", "pathlib.PureWindowsPath",
    # DeepSpeed 0.19 optimizer states: the loss scaler and a fragment address (NEWOBJ + BUILD of plain fields) and
    # the ZeRO stage enum (an Enum looked up by its int value)
    "deepspeed.runtime.fp16.loss_scaler.LossScaler", "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
})
# A stock Lightning 2.6 checkpoint (ModelCheckpoint, EarlyStopping, Adam + StepLR, save_hyperparameters) imports
# only torch._utils._rebuild_tensor_v2, torch.FloatStorage and collections.OrderedDict: no Lightning class is
# pickled (hyper_parameters is saved as a plain dict), so Lightning needs nothing beyond torch's list.

UNRESOLVED = "?"  # module and name of a STACK_GLOBAL or EXT whose operands the walk could not resolve: unsafe


class _Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Pid:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Opaque:
    """A value the simulation does not model (an object built by a call it does not follow, a set, a buffer)."""

    __slots__ = ()


_OPAQUE = _Opaque()
# opcodes whose argument is the value they push (genops decodes it)
_CONSTANTS = frozenset({
    "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "BININT", "BININT1", "BININT2", "LONG1", "LONG4",
    "LONG", "BINFLOAT", "FLOAT", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "INT",
})


@dataclass(frozen=True)
class Storage:
    """A storage a pickle refers to by persistent id: its archive key, dtype, element count and location."""

    key: str
    dtype: str
    itemsize: int
    numel: int
    location: str

    @property
    def nbytes(self) -> int:
        """Bytes the storage's data record must hold."""
        return self.numel * self.itemsize


@dataclass(frozen=True)
class Tensor:
    """A tensor as its rebuild call describes it: dtype (and bytes per element), shape, stride, offset in
    elements into a storage (None: a meta tensor, which has no data)."""

    dtype: str
    itemsize: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    storage: Storage | None

    @property
    def numel(self) -> int:
        """Elements, from the shape."""
        return math.prod(self.shape)

    @property
    def extent(self) -> int:
        """Bytes of the storage the tensor reaches (offset + farthest strided element + 1; 0 when empty)."""
        if self.numel == 0:
            return 0
        farthest = sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=False))
        return (self.offset + farthest + 1) * self.itemsize


@dataclass
class PickleScan:
    """What one pickle imports and holds, read from its opcodes. `end` is the offset just after its STOP (None
    when it has none); `truncated`: the data ended inside the pickle."""

    path: str
    globals: list[PickleGlobal] = field(default_factory=list)
    storages: dict[str, Storage] = field(default_factory=dict)
    root: Any = None
    problems: list[str] = field(default_factory=list)
    end: int | None = None
    truncated: bool = False

    def tensors(self, limit: int = 1_000_000) -> Iterator[tuple[tuple[str, ...], Tensor]]:
        """Every tensor reachable from the root with its key path (dict keys, list indices as strings)."""
        yield from tensor_paths(self.root, limit)


def tensor_paths(root: Any, limit: int = 1_000_000) -> Iterator[tuple[tuple[str, ...], Tensor]]:
    """Tensors below a simulated value, depth-first in key order; stops after `limit` visited values (a pickle
    can make a graph whose paths grow exponentially) and below 64 levels."""
    todo: list[tuple[tuple[str, ...], Any]] = [((), root)]
    visited = 0
    while todo and visited < limit:
        path, value = todo.pop()
        visited += 1
        if isinstance(value, Tensor):
            yield path, value
        elif len(path) >= 64:
            continue
        elif isinstance(value, dict):
            todo.extend(((*path, str(k)), v) for k, v in reversed(value.items()))
        elif isinstance(value, (list, tuple)):
            todo.extend(((*path, str(i)), v) for i, v in reversed(list(enumerate(value))))


def _normalise(module: str, name: str) -> tuple[str, str]:
    # what Unpickler.find_class imports for a protocol-2 name (`__builtin__` → `builtins`), as torch's checker does
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _storage(pid: Any, scan: PickleScan) -> Storage | None:
    # ('storage', torch.<X>Storage, key, location, numel[, view_metadata]) as torch.save writes it
    if not (isinstance(pid, _Pid) and isinstance(pid.value, tuple) and len(pid.value) >= 5):
        return None
    tag, kind, key, location, numel = pid.value[:5]
    if tag != "storage" or not isinstance(kind, _Global) or not isinstance(key, str) or not isinstance(numel, int):
        return None
    dtype = STORAGE_DTYPES.get(kind.name) if kind.module in ("torch", "torch.storage", "torch.cuda") else None
    if dtype is None:
        return None
    found = scan.storages.setdefault(key, Storage(key, dtype[0], dtype[1], numel, str(location)))
    return found


def _ints(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    return None


def _tensor(storage: Storage | None, args: tuple, dtype: tuple[str, int] | None) -> Any:
    if storage is None or len(args) < 4:
        return _OPAQUE
    offset, shape, stride = args[1], _ints(args[2]), _ints(args[3])
    if not isinstance(offset, int) or shape is None or stride is None or len(shape) != len(stride):
        return _OPAQUE
    code, itemsize = dtype or (storage.dtype, storage.itemsize)
    return Tensor(code, itemsize, shape, stride, offset, storage)


def _call(func: Any, args: Any, scan: PickleScan) -> Any:
    """What a REDUCE of `func(*args)` gives in the simulation: a dict, a Tensor, a tuple, or opaque."""
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        return _OPAQUE
    module, name = func.module, func.name
    if (module, name) in (("collections", "OrderedDict"), ("builtins", "dict")):
        return {}
    if module == "torch" and name == "Size" and args and _ints(args[0]) is not None:
        return args[0]
    if module == "torch._tensor" and name == "_rebuild_from_type_v2" and len(args) >= 3:
        inner = args[2]
        return _call(args[0], inner, scan) if isinstance(inner, tuple) else _OPAQUE
    if module != "torch._utils" or not args:
        return _OPAQUE
    if name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_qtensor"):
        return _tensor(_storage(args[0], scan), args, None)
    if name == "_rebuild_tensor_v3" and len(args) >= 7:
        dtype = args[6]
        known = TORCH_DTYPES.get(dtype.name) if isinstance(dtype, _Global) else None
        return _tensor(_storage(args[0], scan), args, known)
    if name in ("_rebuild_parameter", "_rebuild_parameter_with_state", "_rebuild_device_tensor_from_cpu_tensor"):
        return args[0] if isinstance(args[0], Tensor) else _OPAQUE
    if name == "_rebuild_meta_tensor_no_storage" and len(args) >= 3 and isinstance(args[0], _Global):
        known, shape, stride = TORCH_DTYPES.get(args[0].name), _ints(args[1]), _ints(args[2])
        if known and shape is not None and stride is not None and len(shape) == len(stride):
            return Tensor(known[0], known[1], shape, stride, 0, None)
    return _OPAQUE


class _Walk:
    """The stack machine: pickle's own stack/metastack/memo discipline over simulated values."""

    def __init__(self, scan: PickleScan) -> None:
        self.scan = scan
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.seen: set[tuple[str, str]] = set()
        self.broken = False

    def fault(self, pos: int, what: str) -> None:
        # a pickle the real unpickler would reject here; keep walking so later globals are still recorded
        if not self.broken:
            self.scan.problems.append(f"pickle cannot be followed at offset {pos}: {what}")
        self.broken = True

    def pop(self, pos: int) -> Any:
        if self.stack:
            return self.stack.pop()
        self.fault(pos, "stack underflow")
        return _OPAQUE

    def pop_mark(self, pos: int) -> list[Any]:
        items = self.stack
        if not self.metastack:
            self.fault(pos, "no MARK to pop to")
            self.stack = []
            return items
        self.stack = self.metastack.pop()
        return items

    def record(self, module: Any, name: Any, pos: int) -> _Global:
        if isinstance(module, str) and isinstance(name, str):
            module, name = _normalise(module, name)
        else:
            module = name = UNRESOLVED
        if (module, name) not in self.seen:
            self.seen.add((module, name))
            self.scan.globals.append(PickleGlobal(self.scan.path, module, name, pos))
        return _Global(module, name)

    def step(self, name: str, arg: Any, pos: int) -> None:  # one branch per opcode, as pickle's own
        stack = self.stack
        if name in ("BINPUT", "LONG_BINPUT", "PUT"):
            self.memo[int(arg)] = stack[-1] if stack else self.pop(pos)
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1] if stack else self.pop(pos)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            if int(arg) in self.memo:
                stack.append(self.memo[int(arg)])
            else:
                self.fault(pos, f"memo key {arg} was never stored")
                stack.append(_OPAQUE)
        elif name in _CONSTANTS:
            stack.append(arg)
        elif name == "MARK":
            self.metastack.append(stack)
            self.stack = []
        elif name == "TUPLE":
            items = self.pop_mark(pos)  # before naming self.stack: popping the mark replaces it
            self.stack.append(tuple(items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                self.fault(pos, "stack underflow")
                stack.append(_OPAQUE)
            else:
                packed = tuple(stack[-n:])
                del stack[-n:]
                stack.append(packed)
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("EMPTY_DICT", "EMPTY_LIST"):
            stack.append({} if name == "EMPTY_DICT" else [])
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "REDUCE":
            args, func = self.pop(pos), self.pop(pos)
            self.stack.append(_call(func, args, self.scan))
        elif name == "BINPERSID":
            self.stack.append(_Pid(self.pop(pos)))
        elif name == "PERSID":
            stack.append(_Pid(arg))
        elif name == "GLOBAL" or name == "INST":
            module, _, attr = str(arg).partition(" ")
            found = self.record(module, attr, pos)
            if name == "INST":
                self.pop_mark(pos)
                self.stack.append(_OPAQUE)
            else:
                stack.append(found)
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(pos), self.pop(pos)
            self.stack.append(self.record(module, attr, pos))
        elif name in ("EXT1", "EXT2", "EXT4"):
            # copyreg's extension registry maps the code to a global only the loading process knows
            stack.append(self.record(None, None, pos))
        elif name == "SETITEM":
            value, key = self.pop(pos), self.pop(pos)
            self._set(self.stack[-1] if self.stack else self.pop(pos), [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark(pos)
            self._set(self.stack[-1] if self.stack else self.pop(pos), items)
        elif name == "APPEND":
            value = self.pop(pos)
            target = self.stack[-1] if self.stack else self.pop(pos)
            if isinstance(target, list):
                target.append(value)
        elif name == "APPENDS":
            items = self.pop_mark(pos)
            target = self.stack[-1] if self.stack else self.pop(pos)
            if isinstance(target, list):
                target.extend(items)
        elif name in ("LIST", "DICT"):
            items = self.pop_mark(pos)
            if name == "LIST":
                self.stack.append(list(items))
            else:
                made: dict[Any, Any] = {}
                self._set(made, items)
                self.stack.append(made)
        elif name == "BUILD":
            self.pop(pos)  # the state; the object stays (an OrderedDict's _metadata, an object's __dict__)
            if not self.stack:
                self.fault(pos, "BUILD with no object to build")
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            for _ in range(2 if name == "NEWOBJ" else 3):
                self.pop(pos)
            self.stack.append(_OPAQUE)
        elif name == "OBJ":
            self.pop_mark(pos)
            self.stack.append(_OPAQUE)
        elif name in ("EMPTY_SET", "BYTEARRAY8", "NEXT_BUFFER"):
            stack.append(_OPAQUE)
        elif name == "FROZENSET":
            self.pop_mark(pos)
            self.stack.append(_OPAQUE)
        elif name == "ADDITEMS":
            self.pop_mark(pos)
        elif name == "POP":
            if stack:
                stack.pop()
            else:
                self.pop_mark(pos)
        elif name == "POP_MARK":
            self.pop_mark(pos)
        elif name == "DUP":
            stack.append(stack[-1] if stack else self.pop(pos))
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER", "STOP"):
            pass
        else:
            self.fault(pos, f"opcode {name} is not followed")

    def _set(self, target: Any, items: list[Any]) -> None:
        if not isinstance(target, dict):
            return  # SETITEMS on an object the walk does not model: its contents are not tensors of a state dict
        for key, value in zip(items[::2], items[1::2], strict=False):  # an odd last key is dropped
            try:
                target[key] = value
            except TypeError:  # an unhashable simulated key (a list, a dict): the real load would fail too
                continue


def walk_pickle(data: bytes, path: str, start: int = 0, walker: type[_Walk] | None = None) -> PickleScan:
    """Walk the pickle at `data[start:]` up to its STOP without executing it: its globals (each distinct one once,
    at its first offset), its storages and its simulated root value. Never raises; malformed data is a problem.
    `walker`: a _Walk subclass that models more of the opcodes (DCP keeps NEWOBJ/BUILD objects)."""
    scan = PickleScan(path=path)
    walk = (walker or _Walk)(scan)
    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        for opcode, arg, pos in pickletools.genops(stream):
            walk.step(opcode.name, arg, pos if pos is not None else -1)
            if opcode.name == "STOP":
                scan.end = (pos or 0) + 1
    except Exception as exc:  # genops raises ValueError and friends on malformed bytes; the walk must not raise
        scan.truncated = stream.tell() >= len(data)
        what = "the data ends inside it" if scan.truncated else str(exc)
        scan.problems.append(f"pickle is malformed at offset {stream.tell()}: {what}")
        return scan
    if scan.end is None:
        scan.truncated = True
        scan.problems.append("pickle has no STOP opcode: the data ends inside it")
    elif not walk.broken:
        scan.root = walk.stack[-1] if walk.stack else None
    return scan


def is_safe_global(module: str, name: str) -> bool:
    """Whether importing `module.name` during a load is on the allowlist (torch's weights_only list and the
    data-only additions above)."""
    return f"{module}.{name}" in SAFE_GLOBALS


def unsafe_globals(found: PickleScan | Iterable[PickleGlobal]) -> list[PickleGlobal]:
    """The globals of a scan (or any PickleGlobal list, e.g. Checkpoint.pickle_globals) off the allowlist, in
    the order found; an unresolved STACK_GLOBAL is among them."""
    items = found.globals if isinstance(found, PickleScan) else found
    return [g for g in items if not is_safe_global(g.module, g.name)]
