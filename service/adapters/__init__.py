"""LoRA adapters: the versioned store on disk, the registry (leases, swaps), validation."""

from service.adapters.registry import NO_LEASE, AdapterRegistry, AdapterStatus, Lease, RegistryLimits
from service.adapters.store import AdapterRecord, AdapterStore

__all__ = ["NO_LEASE", "AdapterRecord", "AdapterRegistry", "AdapterStatus", "AdapterStore", "Lease", "RegistryLimits"]
