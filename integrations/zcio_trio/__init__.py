"""trio integration (planned: a zero-copy ``HalfCloseableStream`` wrapper).

Nothing is exported yet. ``zcio.send_file`` already accepts ``trio.SocketStream`` and
``trio.SSLStream`` directly.
"""
