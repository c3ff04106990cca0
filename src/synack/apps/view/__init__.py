"""`synack view`: a web page that draws a lesson, or a live traced connection, as it happens."""
