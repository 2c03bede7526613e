"""People: the nearest-neighbour graph that domain/people.py's rules group faces by."""
