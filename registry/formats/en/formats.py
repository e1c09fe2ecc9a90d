from registry.formats.iso import *  # noqa: F403
