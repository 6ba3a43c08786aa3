"""
One ID level's codebook (dot-product code scores, straight-through (Gumbel-)softmax, k-means initialisation) and the
prefix-group means that centre level representations before they are scored.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .output_head import float32_linear


if TYPE_CHECKING:
    import faiss


@dataclass
class CodebookOutput:
    """
    Result of quantising a batch of level representations.

    Args:
        quantized (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            The chosen codebook rows in the forward pass, in the codebook's dtype; in training the gradient flows
            through the softmax-weighted mixture of all rows (straight-through estimator).
        codes (`torch.LongTensor` of shape `(batch_size,)`):
            Index of the chosen code of each representation.
        scores (`torch.FloatTensor` of shape `(batch_size, num_codes)`):
            Dot products between the representations and every codebook row, in `float32`.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    scores: torch.Tensor


class LMIndexerCodebook(nn.Module):
    """
    The K_t code vectors of one ID level. A representation `h` gets the code `argmax_k h . E[k]`.

    Args:
        num_codes (`int`): Codebook size K_t.
        hidden_size (`int`): Width of the representations and code vectors.
        temperature (`float`): Softmax temperature of the straight-through estimator.
        use_gumbel_noise (`bool`): Perturb the scores with Gumbel noise in training (straight-through Gumbel-softmax).
    """

    def __init__(self, num_codes: int, hidden_size: int, temperature: float = 1.0, use_gumbel_noise: bool = False):
        super().__init__()
        self.num_codes = num_codes
        self.temperature = temperature
        self.use_gumbel_noise = use_gumbel_noise
        self.weight = nn.Parameter(torch.empty(num_codes, hidden_size))

    def scores(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Dot-product scores `(..., num_codes)` of representations `(..., hidden_size)`, in `float32` (see
        [`float32_linear`]) whatever the model's dtype or autocast."""
        return float32_linear(hidden_states, self.weight)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors `(..., hidden_size)` of integer codes `(...)`."""
        return nn.functional.embedding(codes, self.weight)

    def forward(self, hidden_states: torch.Tensor) -> CodebookOutput:
        """
        Quantise representations of shape `(batch_size, hidden_size)` to their best code vectors.

        The forward value is the chosen row `E[c]`; the gradient reaches the encoder and every codebook row through
        `softmax(scores / temperature) @ E`. Scores, softmax and mixture are computed in `float32` (under bfloat16
        autocast too), so that near-tied codes keep their order and the forward value is the chosen row itself, not
        its bfloat16 rounding.
        """
        scores = self.scores(hidden_states)
        logits = scores
        if self.training and self.use_gumbel_noise:
            uniform = torch.rand_like(scores).clamp_(min=1e-9, max=1.0 - 1e-9)
            logits = scores - torch.log(-torch.log(uniform))
        codes = logits.argmax(dim=-1)
        soft_assignment = torch.softmax(logits / self.temperature, dim=-1)
        hard_assignment = nn.functional.one_hot(codes, self.num_codes).to(soft_assignment.dtype)
        straight_through = hard_assignment - soft_assignment.detach() + soft_assignment
        quantized = float32_linear(straight_through, self.weight.t()).to(self.weight.dtype)
        return CodebookOutput(quantized=quantized, codes=codes, scores=scores)

    @torch.no_grad()
    def initialize_from_centroids(self, centroids: torch.Tensor) -> None:
        """Copy k-means centres of shape `(num_codes, hidden_size)` into the codebook."""
        if tuple(centroids.shape) != tuple(self.weight.shape):
            raise ValueError(
                f"Expected {self.num_codes} centroids of width {self.weight.shape[1]}, "
                f"got shape {tuple(centroids.shape)}."
            )
        self.weight.copy_(centroids.to(device=self.weight.device, dtype=self.weight.dtype))


class PrefixGroupMeans:
    """
    Mean level representation of every prefix group of a corpus, per ID level.

    At level t, the documents sharing the same t earlier codes form a prefix group. Their level representations share
    a large component carried by those codes, so a codebook shared by all groups would give them all the same code.
    Subtracting the group mean leaves what tells the group's documents apart; that residual is what k-means clusters
    and the codebook scores. At level 0 the only group is the whole corpus. Groups of one document are not stored: such
    a document cannot collide, and its raw representation gives it a stable code where its residual would be zero.

    The means belong to the corpus, like the [`SemanticIDs`], and are saved next to them, not in the model weights.
    Prefixes are stored as sorted mixed-radix keys, so a lookup is one `torch.searchsorted`.

    Args:
        codebook_sizes (`list[int]`): Codebook size of every level (the radices of the keys).
    """

    def __init__(self, codebook_sizes: list[int]):
        self.codebook_sizes = list(codebook_sizes)
        self.keys: dict[int, torch.Tensor] = {}
        self.means: dict[int, torch.Tensor] = {}

    def _prefix_keys(self, level: int, prefix_codes: torch.Tensor | None, batch_size: int, device) -> torch.Tensor:
        keys = torch.zeros(batch_size, dtype=torch.long, device=device)
        for earlier in range(level):
            keys = keys * self.codebook_sizes[earlier] + prefix_codes[:, earlier].to(device)
        return keys

    def has_level(self, level: int) -> bool:
        return level in self.means

    @torch.no_grad()
    def fit(self, level: int, representations: torch.Tensor, prefix_codes: torch.Tensor | None) -> None:
        """
        Store the group means of one level.

        Args:
            level (`int`): 0-based ID level.
            representations (`torch.FloatTensor` of shape `(num_documents, hidden_size)`): Level representations.
            prefix_codes (`torch.LongTensor` of shape `(num_documents, level)`, *optional* at level 0).
        """
        representations = representations.detach().float()
        keys = self._prefix_keys(level, prefix_codes, representations.shape[0], representations.device)
        unique_keys, group_index = torch.unique(keys, sorted=True, return_inverse=True)
        sums = torch.zeros(len(unique_keys), representations.shape[1], device=representations.device)
        sums.index_add_(0, group_index, representations)
        counts = torch.bincount(group_index, minlength=len(unique_keys))
        shared = counts > 1
        self.keys[level] = unique_keys[shared]
        self.means[level] = sums[shared] / counts[shared, None]

    def __call__(self, level: int, prefix_codes: torch.Tensor | None, hidden_states: torch.Tensor) -> torch.Tensor:
        """
        The group means `(batch_size, hidden_size)` of documents with `prefix_codes` `(batch_size, level)`; zeros for
        prefixes shared by fewer than two corpus documents, and for levels without fitted means.
        """
        offsets = torch.zeros_like(hidden_states)
        # A level whose corpus shares no prefix (e.g. a corpus of one document) stores no group at all.
        if level not in self.means or len(self.keys[level]) == 0:
            return offsets
        keys = self._prefix_keys(level, prefix_codes, hidden_states.shape[0], hidden_states.device)
        if self.keys[level].device != hidden_states.device:
            # Kept where they are used: a retriever reads them at every decoding step, a copy each time would cost
            # a host-to-device transfer of every group's mean.
            self.keys[level] = self.keys[level].to(hidden_states.device)
            self.means[level] = self.means[level].to(hidden_states.device)
        stored_keys = self.keys[level]
        position = torch.searchsorted(stored_keys, keys).clamp(max=len(stored_keys) - 1)
        found = stored_keys[position] == keys
        means = self.means[level].to(hidden_states.dtype)
        offsets[found] = means[position[found]]
        return offsets

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Flat tensors for a safetensors file: `level_{t}.keys` `(num_groups,)` and `level_{t}.means`."""
        tensors = {}
        for level in sorted(self.means):
            tensors[f"level_{level}.keys"] = self.keys[level].cpu().contiguous()
            tensors[f"level_{level}.means"] = self.means[level].cpu().contiguous()
        return tensors

    @classmethod
    def from_tensors(
        cls, codebook_sizes: list[int], tensors: dict[str, torch.Tensor], source: str = "prefix group means"
    ) -> "PrefixGroupMeans":
        """Inverse of [`to_tensors`]; raises `ValueError` naming `source` for inconsistent tensors."""
        group_means = cls(codebook_sizes)
        levels = sorted({int(name.split(".")[0].removeprefix("level_")) for name in tensors})
        for level in levels:
            keys, means = tensors.get(f"level_{level}.keys"), tensors.get(f"level_{level}.means")
            if keys is None or means is None or keys.ndim != 1 or means.ndim != 2 or len(keys) != len(means):
                raise ValueError(f"{source}: level {level} needs 1-D keys and 2-D means of the same length.")
            if level >= len(codebook_sizes):
                raise ValueError(f"{source}: level {level} is beyond the model's {len(codebook_sizes)} levels.")
            group_means.keys[level] = keys.long()
            group_means.means[level] = means.float()
        return group_means


def train_faiss_kmeans(
    vectors: np.ndarray,
    num_clusters: int,
    num_iterations: int,
    seed: int,
    num_restarts: int = 1,
    spherical: bool = False,
    max_points_per_centroid: int = 256,
) -> "faiss.Kmeans":
    """
    Train faiss k-means: the one k-means of the package, behind the codebook initialisation ([`kmeans_centroids`]) and
    the k-means ID baselines.

    Args:
        vectors (`np.ndarray` of shape `(num_vectors, dim)`): Contiguous `float32` vectors, at least `num_clusters`.
        num_clusters (`int`): Number of centres.
        num_iterations (`int`): Iterations per restart.
        seed (`int`): Random seed of faiss.
        num_restarts (`int`): Independent restarts; faiss keeps the best.
        spherical (`bool`): L2-normalise the centres after every iteration (cosine k-means for unit-norm vectors).
        max_points_per_centroid (`int`): With more than `num_clusters * max_points_per_centroid` vectors, faiss trains
            on a random sample of that many (faiss' default 256).

    Returns:
        The trained `faiss.Kmeans`: `centroids` of shape `(num_clusters, dim)`, and the `index` of the centres that
        assigns vectors to them.
    """
    try:
        import faiss
    except ImportError as error:
        raise ImportError("k-means needs faiss: `pip install faiss-cpu`.") from error

    kmeans = faiss.Kmeans(
        vectors.shape[1],
        num_clusters,
        niter=num_iterations,
        nredo=num_restarts,
        spherical=spherical,
        seed=seed,
        max_points_per_centroid=max_points_per_centroid,
        # Small corpora are expected (a codebook needs only as many documents as codes): no faiss warning about them.
        min_points_per_centroid=1,
        verbose=False,
    )
    kmeans.train(vectors)
    return kmeans


def kmeans_centroids(
    representations: torch.Tensor | np.ndarray,
    num_clusters: int,
    num_iterations: int = 50,
    num_restarts: int = 3,
    spherical: bool = True,
    seed: int = 0,
) -> torch.Tensor:
    """
    Cluster representations with faiss k-means.

    With `spherical=True`, the representations and centres are L2-normalised (cosine k-means), so that the k-means
    assignment `argmax_k cos(h, E[k])` equals the codebook's dot-product selection `argmax_k h . E[k]` for unit-norm
    centres. The centres are then rescaled to the mean representation norm, keeping the straight-through softmax at
    the scale of the raw dot products.

    Args:
        representations (`torch.Tensor` or `np.ndarray` of shape `(num_documents, hidden_size)`):
            Level representations of the whole corpus.
        num_clusters (`int`): Number of centres (the codebook size).
        num_iterations (`int`): k-means iterations per restart.
        num_restarts (`int`): Independent restarts; faiss keeps the best.
        spherical (`bool`): Cosine k-means instead of Euclidean.
        seed (`int`): Random seed of faiss.

    Returns:
        `torch.FloatTensor` of shape `(num_clusters, hidden_size)`: the centres.
    """
    if isinstance(representations, torch.Tensor):
        representations = representations.detach().float().cpu().numpy()
    vectors = np.ascontiguousarray(representations, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"k-means expects a 2-D (num_documents, hidden_size) array, got shape {vectors.shape}.")
    if len(vectors) < num_clusters:
        raise ValueError(
            "k-means needs at least as many documents as codes: "
            f"got {len(vectors)} documents for {num_clusters} codes."
        )
    if not np.isfinite(vectors).all():
        raise ValueError("k-means input contains NaN or infinite values; the representations diverged.")
    mean_norm = float(np.linalg.norm(vectors, axis=1).mean())
    if spherical:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    kmeans = train_faiss_kmeans(
        vectors,
        num_clusters,
        num_iterations,
        seed,
        num_restarts=num_restarts,
        spherical=spherical,
        # Every representation trains the codebook, however large the corpus: no subsample.
        max_points_per_centroid=max(256, len(vectors) // num_clusters + 1),
    )
    centroids = torch.from_numpy(kmeans.centroids.copy())
    if spherical:
        centroids = centroids * mean_norm
    return centroids


__all__ = ["CodebookOutput", "LMIndexerCodebook", "PrefixGroupMeans", "kmeans_centroids", "train_faiss_kmeans"]
