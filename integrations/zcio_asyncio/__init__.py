"""asyncio integration (planned: ``sock_sendfile``/``sendfile`` drop-ins that work on uvloop).

Nothing is exported yet. ``zcio.send_file`` already accepts asyncio transports and
``StreamWriter`` directly, on the default loop and on uvloop.
"""
