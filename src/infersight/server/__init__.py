"""`infersight server`'s composition root: `app.build_app` serves an explicit list of components, and
`components.default_components` is the one place that names every area the server runs."""
