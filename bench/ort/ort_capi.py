"""The part of ONNX Runtime's C API the bench uses, through ctypes, on onnxruntime-node's own
libonnxruntime.so.1 (its Linux x64 build has the WebGPU execution provider, with Dawn linked in;
the GPU machine's Python onnxruntime wheel has none, and carrying Node to run onnxruntime-node
itself would not fit the device call's 64 MiB beside the tracked files).

OrtApi is a table of function pointers whose order never changes (new functions are appended),
so each function is found by its index: counted from the OrtApi struct of ONNX Runtime's
onnxruntime_c_api.h (as mirrored by the ort-sys crate's bindings), checked at start-up by a
CreateStatus / GetErrorMessage round trip and by the behaviour of every call (a wrong index
fails loudly, with a wrong status or a crash, never with plausible numbers)."""
import ctypes as C

import numpy as np

# Index of each function in struct OrtApi (API version 17 or later has them all).
INDEX = {
    "CreateStatus": 0, "GetErrorMessage": 2, "CreateEnv": 3, "CreateSession": 7, "Run": 9,
    "CreateSessionOptions": 10, "SetSessionGraphOptimizationLevel": 23,
    "SessionGetInputCount": 30, "SessionGetOutputCount": 31, "SessionGetInputName": 36,
    "SessionGetOutputName": 37, "CreateTensorWithDataAsOrtValue": 49, "GetTensorMutableData": 51,
    "GetTensorElementType": 60, "GetDimensionsCount": 61, "GetDimensions": 62,
    "GetTensorTypeAndShape": 65, "CreateMemoryInfo": 68, "CreateCpuMemoryInfo": 69,
    "AllocatorFree": 76, "GetAllocatorWithDefaultOptions": 78, "ReleaseEnv": 92,
    "ReleaseStatus": 93, "ReleaseMemoryInfo": 94, "ReleaseSession": 95, "ReleaseValue": 96,
    "ReleaseTensorTypeAndShapeInfo": 99, "ReleaseSessionOptions": 100, "RunWithBinding": 133,
    "CreateIoBinding": 134, "ReleaseIoBinding": 135, "BindInput": 136,
    "BindOutputToDevice": 138, "GetBoundOutputValues": 140, "ClearBoundInputs": 141,
    "ClearBoundOutputs": 142, "SessionOptionsAppendExecutionProvider": 216,
}
P = C.c_void_p
PP = C.POINTER(C.c_void_p)
SIG = {  # restype, argtypes (every OrtStatus* is returned as a void pointer)
    "CreateStatus": (P, [C.c_int, C.c_char_p]),
    "GetErrorMessage": (C.c_char_p, [P]),
    "CreateEnv": (P, [C.c_int, C.c_char_p, PP]),
    "CreateSession": (P, [P, C.c_char_p, P, PP]),
    "Run": (P, [P, P, C.POINTER(C.c_char_p), PP, C.c_size_t, C.POINTER(C.c_char_p), C.c_size_t, PP]),
    "CreateSessionOptions": (P, [PP]),
    "SetSessionGraphOptimizationLevel": (P, [P, C.c_int]),
    "SessionGetInputCount": (P, [P, C.POINTER(C.c_size_t)]),
    "SessionGetOutputCount": (P, [P, C.POINTER(C.c_size_t)]),
    "SessionGetInputName": (P, [P, C.c_size_t, P, C.POINTER(C.c_char_p)]),
    "SessionGetOutputName": (P, [P, C.c_size_t, P, C.POINTER(C.c_char_p)]),
    "CreateTensorWithDataAsOrtValue": (P, [P, P, C.c_size_t, C.POINTER(C.c_int64), C.c_size_t, C.c_int, PP]),
    "GetTensorMutableData": (P, [P, PP]),
    "GetTensorElementType": (P, [P, C.POINTER(C.c_int)]),
    "GetDimensionsCount": (P, [P, C.POINTER(C.c_size_t)]),
    "GetDimensions": (P, [P, C.POINTER(C.c_int64), C.c_size_t]),
    "GetTensorTypeAndShape": (P, [P, PP]),
    "CreateMemoryInfo": (P, [C.c_char_p, C.c_int, C.c_int, C.c_int, PP]),
    "CreateCpuMemoryInfo": (P, [C.c_int, C.c_int, PP]),
    "AllocatorFree": (P, [P, P]),
    "GetAllocatorWithDefaultOptions": (P, [PP]),
    "ReleaseEnv": (None, [P]), "ReleaseStatus": (None, [P]), "ReleaseMemoryInfo": (None, [P]),
    "ReleaseSession": (None, [P]), "ReleaseValue": (None, [P]),
    "ReleaseTensorTypeAndShapeInfo": (None, [P]), "ReleaseSessionOptions": (None, [P]),
    "RunWithBinding": (P, [P, P, P]),
    "CreateIoBinding": (P, [P, PP]),
    "ReleaseIoBinding": (None, [P]),
    "BindInput": (P, [P, C.c_char_p, P]),
    "BindOutputToDevice": (P, [P, C.c_char_p, P]),
    "GetBoundOutputValues": (P, [P, P, C.POINTER(PP), C.POINTER(C.c_size_t)]),
    "ClearBoundInputs": (None, [P]), "ClearBoundOutputs": (None, [P]),
    "SessionOptionsAppendExecutionProvider": (P, [P, C.c_char_p, C.POINTER(C.c_char_p), C.POINTER(C.c_char_p), C.c_size_t]),
}
# ONNXTensorElementDataType
FLOAT, INT64, FLOAT16 = 1, 7, 10
NP_OF = {FLOAT: np.float32, INT64: np.int64, FLOAT16: np.float16}
CODE_OF = {np.dtype(np.float32): FLOAT, np.dtype(np.int64): INT64, np.dtype(np.float16): FLOAT16}
ORT_ENABLE_ALL = 99
WEBGPU_BUFFER = b"WebGPU_Buffer"  # the WebGPU EP's memory name (its OrtMemoryInfo)


class OrtError(RuntimeError):
    pass


class Api:
    """The C API of one libonnxruntime.so.1; `call(name, ...)` raises OrtError on a failed status."""

    def __init__(self, lib_path, version=17):
        self.lib = C.CDLL(lib_path)
        self.lib.OrtGetApiBase.restype = P
        base = C.cast(self.lib.OrtGetApiBase(), PP)
        get_api = C.CFUNCTYPE(P, C.c_uint32)(base[0])
        get_version = C.CFUNCTYPE(C.c_char_p)(base[1])
        self.version = get_version().decode()
        table = get_api(version)
        if not table:
            raise OrtError(f"ONNX Runtime {self.version} does not give API version {version}")
        table = C.cast(table, PP)
        self.fn = {}
        for name, i in INDEX.items():
            rest, args = SIG[name]
            self.fn[name] = C.CFUNCTYPE(rest, *args)(table[i])
        # The round trip through two entries of the table: a wrong layout fails here.
        st = self.fn["CreateStatus"](1, b"strata index check")
        msg = self.fn["GetErrorMessage"](st)
        self.fn["ReleaseStatus"](st)
        if msg != b"strata index check":
            raise OrtError(f"OrtApi layout check failed (got {msg!r})")
        self.allocator = self.out_ptr("GetAllocatorWithDefaultOptions")

    def call(self, name, *args):
        st = self.fn[name](*args)
        if st:
            msg = self.fn["GetErrorMessage"](st).decode(errors="replace")
            self.fn["ReleaseStatus"](st)
            raise OrtError(f"{name}: {msg}")

    def out_ptr(self, name, *args):
        out = P()
        self.call(name, *args, C.byref(out))
        return out.value

    def release(self, what, ptr):
        if ptr:
            self.fn["Release" + what](ptr)


class Session:
    """One InferenceSession on an execution provider ('webgpu' or 'cpu'), with the cache kept on
    the device between steps through an IoBinding: outputs named in `device_outputs` stay there
    (as OrtValues the caller feeds back and releases), the rest come to the host as numpy."""

    def __init__(self, api, path, ep="webgpu", provider_options=None):
        self.api = api
        a = api
        self.env = a.out_ptr("CreateEnv", 3, b"strata-ort")  # log errors only
        so = a.out_ptr("CreateSessionOptions")
        try:
            a.call("SetSessionGraphOptimizationLevel", so, ORT_ENABLE_ALL)
            if ep == "webgpu":
                opts = provider_options or {}
                keys = (C.c_char_p * max(1, len(opts)))(*[k.encode() for k in opts])
                vals = (C.c_char_p * max(1, len(opts)))(*[str(v).encode() for v in opts.values()])
                a.call("SessionOptionsAppendExecutionProvider", so, b"WebGPU", keys, vals, len(opts))
            elif ep != "cpu":
                raise OrtError(f"execution provider '{ep}' is not one this runner sets up")
            self.session = a.out_ptr("CreateSession", self.env, path.encode(), so)
        finally:
            a.release("SessionOptions", so)
        self.cpu = a.out_ptr("CreateCpuMemoryInfo", 0, 0)  # device allocator, default memory
        self.device = a.out_ptr("CreateMemoryInfo", WEBGPU_BUFFER, 0, 0, 0) if ep == "webgpu" else self.cpu
        self.binding = a.out_ptr("CreateIoBinding", self.session)
        self.inputs = self._names("Input")
        self.outputs = self._names("Output")
        self._keep = []

    def _names(self, kind):
        n = C.c_size_t()
        self.api.call(f"SessionGet{kind}Count", self.session, C.byref(n))
        names = []
        for i in range(n.value):
            s = C.c_char_p()
            self.api.call(f"SessionGet{kind}Name", self.session, i, self.api.allocator, C.byref(s))
            names.append(s.value.decode())
            self.api.call("AllocatorFree", self.api.allocator, C.cast(s, P))
        return names

    def tensor(self, array):
        """A host OrtValue over `array`'s memory (kept alive until the next run)."""
        array = np.ascontiguousarray(array)
        self._keep.append(array)
        shape = (C.c_int64 * max(1, array.ndim))(*array.shape)
        return self.api.out_ptr("CreateTensorWithDataAsOrtValue", self.cpu, array.ctypes.data_as(P),
                                array.nbytes, shape, array.ndim, CODE_OF[array.dtype])

    def to_numpy(self, value):
        a = self.api
        info = a.out_ptr("GetTensorTypeAndShape", value)
        try:
            t = C.c_int()
            a.call("GetTensorElementType", info, C.byref(t))
            n = C.c_size_t()
            a.call("GetDimensionsCount", info, C.byref(n))
            dims = (C.c_int64 * max(1, n.value))()
            a.call("GetDimensions", info, dims, n.value)
        finally:
            a.release("TensorTypeAndShapeInfo", info)
        shape = tuple(dims[i] for i in range(n.value))
        data = a.out_ptr("GetTensorMutableData", value)
        dtype = np.dtype(NP_OF[t.value])
        count = int(np.prod(shape)) if shape else 1
        buf = (C.c_char * (count * dtype.itemsize)).from_address(data)
        return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape).copy()

    def run(self, feeds, device_outputs=()):
        """feeds: name -> numpy array or OrtValue (a device output of an earlier run). Returns
        (host outputs as numpy, device outputs as OrtValues), for every output of the model."""
        a = self.api
        a.fn["ClearBoundInputs"](self.binding)
        a.fn["ClearBoundOutputs"](self.binding)
        made = []
        try:
            for name in self.inputs:
                v = feeds[name]
                if isinstance(v, np.ndarray):
                    v = self.tensor(v)
                    made.append(v)
                a.call("BindInput", self.binding, name.encode(), v)
            for name in self.outputs:
                mem = self.device if name in device_outputs else self.cpu
                a.call("BindOutputToDevice", self.binding, name.encode(), mem)
            a.call("RunWithBinding", self.session, None, self.binding)
            arr = PP()
            n = C.c_size_t()
            a.call("GetBoundOutputValues", self.binding, a.allocator, C.byref(arr), C.byref(n))
            values = [arr[i] for i in range(n.value)]
            a.call("AllocatorFree", a.allocator, C.cast(arr, P))
        finally:
            for v in made:
                a.release("Value", v)
            self._keep.clear()
        host, dev = {}, {}
        for name, v in zip(self.outputs, values):
            if name in device_outputs:
                dev[name] = v
            else:
                host[name] = self.to_numpy(v)
                a.release("Value", v)
        return host, dev

    def close(self):
        a = self.api
        a.release("IoBinding", self.binding)
        a.release("Session", self.session)
        if self.device != self.cpu:
            a.release("MemoryInfo", self.device)
        a.release("MemoryInfo", self.cpu)
        a.release("Env", self.env)
