"""The typed bodies of the core API: what each route structures from its request and answers.

Requests are structured by the one converter (:func:`plexica_sdk.converter.structure`): an unknown
field, a wrong type or a value outside a validator's bounds is a 422 naming the field's path. The
same classes generate ``/openapi.json`` (:mod:`plexica.http.openapi`), so the document is the code.
"""
