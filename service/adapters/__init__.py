"""LoRA adapters: the versioned store on disk, the registry (leases, swaps), validation."""

from service.adapters.registry import AdapterRegistry
from service.adapters.store import AdapterRecord, AdapterStore
from service.adapters.types import NO_LEASE, AdapterSettings, AdapterStatus, Lease, RegistryLimits

__all__ = ["NO_LEASE", "AdapterRecord", "AdapterRegistry", "AdapterSettings", "AdapterStatus", "AdapterStore", "Lease",
           "RegistryLimits"]
