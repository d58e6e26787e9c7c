"""Media handling shared by the producers (checks at ingest) and the processors (rendering).

`errors` names why an input is refused, `pdf` opens, inspects and renders documents,
`video` probes and samples videos, `keys` lays out the derived blobs (pages, frames, the
decrypted copy of a password-protected document). Producers check with these at the front
door; the document worker's render stage (`processors.render`) renders with them later.
"""
