"""The operator web console: static HTML, CSS and JavaScript modules served by the hub."""
