"""Values that cross the Temporal boundary, shared by workflows and activities.

Both sides import from here (downward), never one from the other.
"""
