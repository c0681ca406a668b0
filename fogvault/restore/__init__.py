"""The restore engine: snapshot trees back into files, safely below one target folder."""
