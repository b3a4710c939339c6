"""Numbers that explain a fitted SPIVAE: neurons, relations, trajectory statistics."""

__all__ = []
