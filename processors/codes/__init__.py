"""QR codes and barcodes: OpenCV's detectors first, zxing-cpp for the formats they miss."""

from processors.codes.decoders import decode_image, decoder_labels, decoder_model_refs
from processors.codes.found import FoundCode
from processors.codes.stage import decode_codes

__all__ = ["FoundCode", "decode_codes", "decode_image", "decoder_labels", "decoder_model_refs"]
