"""Check a PEFT LoRA adapter folder before it is registered, and unpack uploaded archives safely.

Pure Python: no HTTP, no vLLM, no torch. An adapter is untrusted input, so nothing here unpickles,
imports or executes anything from it; the safetensors header is read by the `safetensors` library
(never the weights) and every tensor shape is compared with the served base model. The config is
only a claim: the tensor shapes are what catch an adapter trained for another base model.
"""

from service.adapters.validation.archive import safe_extract_tar_gz
from service.adapters.validation.base_shape import BaseModelShape
from service.adapters.validation.errors import AdapterValidationError
from service.adapters.validation.inspection import AdapterInspection, inspect_adapter
from service.adapters.validation.names import NAME_PATTERN, resolve_source_path, validate_adapter_name
from service.adapters.validation.task_policy import (
    TRIAGE_POLICY_FILE,
    LabelTemperatures,
    TriagePolicyFile,
    TriageThresholds,
    read_triage_policy,
)
from service.adapters.validation.weights import read_safetensors_header

__all__ = [
    "NAME_PATTERN",
    "TRIAGE_POLICY_FILE",
    "LabelTemperatures",
    "TriagePolicyFile",
    "TriageThresholds",
    "read_triage_policy",
    "AdapterInspection",
    "AdapterValidationError",
    "BaseModelShape",
    "inspect_adapter",
    "read_safetensors_header",
    "resolve_source_path",
    "safe_extract_tar_gz",
    "validate_adapter_name",
]
