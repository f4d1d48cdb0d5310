"""Event-loop specifics, each imported only when an object of that loop shows up."""
