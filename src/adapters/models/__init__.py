"""The real backend: ONNX Runtime sessions, model packs, face alignment, the recogniser's graph rewrite."""
