"""The simulated application behind `driftline demo`: its world (routes, models, tenants, the
timeline of changes) and the driver that plays it through driftline's real hooks.

Like any instrumented app it imports the hooks; the rest of the analyzers may not.
"""
