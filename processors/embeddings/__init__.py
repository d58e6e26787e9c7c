"""Vector embeddings of images, object crops and OCR text blocks for similarity search.

Text: all-MiniLM-L6-v2 (384-d) run without torch, from its packaged safetensors weights
(`minilm_files`, `bert_numpy` as the reference, `bert_openvino` for speed, `text`).
Images: pooled features of the packaged NanoDet detector's backbone (`backbone`), or a
classical colour and gradient descriptor (`image`) where the detector is not provisioned;
`images` picks one. `stage.embed` turns upload,
frame, detection and OCR events into EmbeddingComputed events.
"""
