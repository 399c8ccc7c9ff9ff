"""Services: the business rules behind the HTTP routes and the CLI, over a session they are given."""
