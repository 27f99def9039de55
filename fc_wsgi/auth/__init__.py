"""Authentication as FC's HTTP triggers do it: anonymous, FC signatures, JWT."""
