"""The loopml tracking server: a FastAPI shell over the tracking service.

Build the app with :func:`loopml.server.app.create_app`, or serve it with
:func:`loopml.server.run.serve`.
"""
