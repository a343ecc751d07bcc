// EfficientFormerV2 backbone tests: being written.
