"""Parts of the sustained-load benchmark (`bench/sustained_load.py`): the load it generates
(MJPEG cameras, document and image uploads), what it collects (Kafka events, processes) and
the pure statistics and table it prints."""
