"""ClusCAM: clustered visual explanations for vision models, and the explainer machinery shared
with the baselines of the ClusCAM benchmark suite."""
from .base import Capture, Explainer, PassCount
from .cluscam import ClusCAM, MetaRepresentations
from .kmeans import KMeansResult, kmeans
from .layers import LayerSpec

__all__ = ["Capture", "ClusCAM", "Explainer", "KMeansResult", "LayerSpec", "MetaRepresentations", "PassCount", "kmeans"]
