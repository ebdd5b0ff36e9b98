"""The bundled sample set (``sample_dataset``): it lives in ``convlens.images.sample_set`` (below every
family, so ``images.resolve_images`` reads ``samples:N``); these names stay importable from here."""
from ..images.sample_set import (EXTRA, SOURCES, SampleDataset, _source, _source_pil, sample_dataset,  # noqa: F401
                                 source_image, source_pil)
