"""The ClusCAM benchmark harness: dataset loaders (:mod:`benchmarks.data`), the paper's evaluation
metrics (:mod:`benchmarks.metrics`, Appendix C), result storage and the runner."""
