// EfficientFormerV2 feature backbone: being written.
