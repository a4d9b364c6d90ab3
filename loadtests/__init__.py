"""Load tests and benchmarks: `loragate bench` (`bench.py`), the structured-output and adapter
benchmarks, the locustfile. Installed beside `service`; servers are started with `service.testing`."""
