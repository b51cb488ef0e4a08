"""data.fit: random: pictures kept as squares a little larger than the image size (dcgan.data.fit.RANDOM_ZOOM), of
which training sees a fresh random window every time and everything else the centre one.

`RandomCrops` stands where a source's image array would (len, indexing, `batches`): indexing gives centre windows
(the held-out probe, the sampler choice's reference images), and `batches` is the in-memory training stream with a
window per image drawn from (seed, batch number), so a resumed run cuts exactly the windows it would have cut.
"""

from __future__ import annotations

import numpy as np

from dcgan.data.batching import distribute_in_memory, make_dataset


def centre(images: np.ndarray, size: int) -> np.ndarray:
    """The centre size x size window of each stored square (what evaluation compares generated images with)."""
    top = (images.shape[1] - size) // 2
    return np.ascontiguousarray(images[:, top : top + size, top : top + size])


class RandomCrops:
    def __init__(self, stored: np.ndarray, labels: np.ndarray | None, size: int):
        self.stored, self.labels, self.size = stored, labels, size
        self.shape = (len(stored), size, size, stored.shape[-1])

    def __len__(self) -> int:
        return len(self.stored)

    def __getitem__(self, index) -> np.ndarray:
        return centre(self.stored[index], self.size)

    def batches(self, strategy, batch_size: int, seed: int, start_batch: int = 0, group: int = 1):
        dataset = make_dataset(self.stored, batch_size, seed, start_batch=start_batch, group=group, labels=self.labels,
                               crop=self.size)
        return iter(distribute_in_memory(strategy, dataset))
