"""The paper's numbers that scripts/claims.py sets beside the measured ones (Tables 2, 4-9, Sec. 4.2).

Each table block has one line per (key, metric): the values of :data:`ORDER`'s methods in that order,
as printed in the paper (Table 5 adds AG-CAM).  :func:`parse` reads a block into
{(key, metric): {method: value}}.
"""
from __future__ import annotations

ORDER = ("gradcam", "gradcampp", "scorecam", "ablationcam", "reciprocam", "opticam", "shapleycam", "cluscam")

# Table 2: mean over the family's six architectures; key dataset/family.
TABLE2 = """
ilsvrc/cnn ad 18.93 20.00 14.66 18.99 23.59 8.75 18.59 7.82
ilsvrc/cnn ic 35.07 33.35 47.99 34.68 30.95 41.78 35.32 59.58
ilsvrc/cnn ag 17.25 15.87 26.15 14.21 15.42 13.90 15.26 33.10
ilsvrc/vit ad 76.68 70.53 56.21 65.19 40.46 4.12 74.58 5.64
ilsvrc/vit ic 4.52 4.95 14.76 7.92 10.39 41.28 5.03 54.71
ilsvrc/vit ag 1.61 1.81 6.93 5.94 4.80 9.00 1.13 31.22
alzheimer/cnn ad 17.92 17.12 13.87 16.34 17.71 9.51 18.18 11.25
alzheimer/cnn ic 32.02 33.06 41.96 34.48 31.68 49.60 31.59 65.00
alzheimer/cnn ag 32.55 33.76 42.71 34.77 32.14 34.03 32.12 58.22
alzheimer/vit ad 49.58 45.50 39.36 47.67 40.55 8.93 47.40 8.79
alzheimer/vit ic 16.41 14.87 23.81 14.02 22.28 46.30 16.33 55.24
alzheimer/vit ag 8.81 8.25 11.41 7.97 7.76 9.96 8.60 17.44
"""

# Table 5 (ViT-B on ILSVRC): the eight methods, then AG-CAM.
TABLE5 = """
vit_b_16 ad 73.40 74.46 56.03 57.94 53.46 4.69 74.44 5.21 17.61
vit_b_16 ic 7.20 7.45 19.10 15.25 9.00 36.30 5.21 60.75 22.35
vit_b_16 ag 4.54 5.32 15.50 20.14 8.68 13.12 1.22 73.96 6.28
"""

# Table 4 (ILSVRC, single-box images), Table 6 (ILSVRC) and Table 7 (Alzheimer's): key model.
TABLE4 = """
resnet18 ep 51.60 51.49 50.99 51.53 51.88 48.76 51.59 50.45
resnet18 le 74.33 72.89 73.55 73.50 77.12 75.31 74.71 73.66
resnet34 ep 51.81 51.73 50.82 51.84 51.44 48.10 51.79 50.10
resnet34 le 73.91 72.89 73.94 73.23 75.06 75.84 74.21 74.62
resnet50 ep 53.34 53.21 52.64 53.30 53.64 50.09 53.33 52.28
resnet50 le 73.18 71.68 72.29 71.89 76.35 74.11 73.78 72.98
resnet101 ep 53.35 53.30 52.32 53.33 53.74 52.17 53.41 51.94
resnet101 le 73.13 71.78 73.58 72.09 76.46 68.68 73.54 73.29
efficientnet_b0 ep 52.27 53.14 53.49 52.30 52.34 51.80 52.21 51.09
efficientnet_b0 le 82.15 83.71 88.18 82.16 84.35 79.97 82.31 72.29
inception_v3 ep 55.44 55.19 53.65 55.18 57.21 54.19 55.42 53.12
inception_v3 le 71.06 70.14 73.01 70.53 77.57 69.53 71.31 74.11
vit_b_16 ep 47.84 47.02 47.05 46.24 48.08 48.56 47.98 46.75
vit_b_16 le 90.64 89.85 86.31 85.24 85.66 79.32 91.00 71.59
swin_b ep 45.72 47.90 49.30 49.66 47.11 49.02 46.16 46.96
swin_b le 97.46 87.72 84.40 82.40 80.35 81.43 97.27 68.70
levit_192 ep 45.22 45.55 48.39 44.30 48.50 48.58 42.70 47.47
levit_192 le 87.82 87.40 84.94 88.38 85.12 74.20 85.89 71.37
levit_256 ep 40.25 46.15 49.86 32.13 49.01 49.91 41.76 47.77
levit_256 le 88.48 86.95 82.99 87.32 84.81 72.83 84.56 70.24
cait_xxs24 ep 46.14 47.57 46.47 46.67 46.84 49.10 43.99 47.27
cait_xxs24 le 91.06 87.01 90.57 93.26 71.82 78.39 89.99 68.83
pvt_v2 ep 23.99 16.92 10.01 25.57 50.06 51.19 10.93 46.44
pvt_v2 le 97.53 98.14 98.75 96.72 80.76 73.06 99.09 69.39
"""

TABLE6 = """
resnet18 ad 21.36 22.09 15.90 21.38 25.73 11.96 21.01 11.50
resnet18 ic 32.15 29.80 41.20 30.80 27.60 42.10 33.20 50.50
resnet18 ag 13.24 11.75 18.19 12.44 11.61 14.21 13.98 22.99
resnet34 ad 17.80 18.22 11.94 18.05 20.11 10.76 17.20 9.16
resnet34 ic 35.35 34.20 50.20 34.25 32.80 41.90 36.30 57.50
resnet34 ag 16.53 15.22 26.25 15.67 15.73 14.58 17.34 32.06
resnet50 ad 14.62 14.87 9.74 14.59 18.08 7.35 14.38 8.58
resnet50 ic 38.70 38.00 53.75 38.60 34.40 45.5 39.75 57.20
resnet50 ag 19.52 18.10 28.96 18.49 17.52 15.14 20.26 32.19
resnet101 ad 13.50 13.45 8.42 13.48 16.63 7.57 13.11 6.57
resnet101 ic 42.20 40.75 57.60 41.40 37.80 43.75 42.90 61.50
resnet101 ag 22.28 20.99 34.83 21.22 20.38 15.64 22.98 36.37
efficientnet_b0 ad 26.72 31.52 32.73 26.86 32.89 6.93 26.41 4.84
efficientnet_b0 ic 30.35 25.30 31.35 30.60 26.75 35.80 31.10 67.15
efficientnet_b0 ag 11.28 9.27 13.65 7.93 9.95 4.99 11.59 28.36
inception_v3 ad 19.57 19.85 9.24 19.57 28.09 7.93 19.41 6.29
inception_v3 ic 31.65 32.05 53.85 31.65 26.35 41.95 20.90 63.60
inception_v3 ag 20.64 19.91 38.31 9.49 17.63 19.74 5.40 46.64
vit_b_16 ad 73.40 74.46 56.03 57.94 52.46 4.69 74.44 5.21
vit_b_16 ic 7.20 7.45 19.10 15.25 9.00 36.30 5.21 60.75
vit_b_16 ag 4.54 5.32 15.50 20.14 8.68 13.12 1.22 73.96
swin_b ad 95.63 68.72 47.70 43.24 48.33 7.20 95.66 8.22
swin_b ic 0.50 1.90 8.10 8.50 2.30 21.60 0.35 22.90
swin_b ag 0.57 1.55 9.93 11.23 7.53 21.95 0.61 45.49
levit_192 ad 62.16 61.99 33.21 63.00 36.29 3.30 59.88 1.33
levit_192 ic 8.50 8.60 28.90 8.45 15.85 47.20 9.70 80.25
levit_192 ag 1.54 1.44 8.19 1.43 3.10 3.42 1.93 20.30
levit_256 ad 64.58 59.16 28.09 55.19 28.73 2.35 52.85 1.55
levit_256 ic 6.15 7.05 27.60 11.40 14.70 50.85 10.80 74.75
levit_256 ag 1.06 1.15 6.32 1.39 3.12 2.84 1.42 15.52
cait_xxs24 ad 72.26 64.09 72.49 83.58 23.36 3.02 67.60 5.51
cait_xxs24 ic 3.45 3.80 4.85 1.80 10.30 43.05 3.45 41.80
cait_xxs24 ag 0.88 1.02 1.64 0.41 2.20 7.50 1.05 15.38
pvt_v2 ad 92.02 94.76 99.71 88.21 53.62 4.15 97.03 12.03
pvt_v2 ic 1.30 0.90 0 2.15 10.20 48.7 0.70 47.80
pvt_v2 ag 1.07 0.38 0 1.03 4.14 5.20 0.56 16.66
"""

TABLE7 = """
resnet18 ad 0.45 0.43 0.38 0.42 0.48 0.31 0.44 0.25
resnet18 ic 25.49 28.85 34.01 28.46 22.91 58.72 25.57 47.30
resnet18 ag 16.98 20.30 24.36 19.56 15.32 25.89 16.89 35.21
resnet34 ad 1.73 1.83 1.06 1.70 1.74 0.62 1.73 0.98
resnet34 ic 60.13 58.87 79.52 62.00 61.69 73.03 60.67 84.28
resnet34 ag 42.49 42.66 68.98 45.40 42.11 20.37 43.17 75.07
resnet50 ad 8.66 8.24 3.30 3.38 9.98 0.03 8.70 0.52
resnet50 ic 2.97 3.44 13.21 9.85 2.66 38.31 2.89 79.51
resnet50 ag 1.18 1.34 7.62 5.56 1.02 26.50 1.09 42.28
resnet101 ad 21.11 20.97 13.49 17.17 21.72 1.23 21.25 9.98
resnet101 ic 19.70 19.62 32.40 22.52 17.90 37.29 18.06 76.08
resnet101 ag 11.40 12.05 22.96 14.76 10.19 26.71 9.65 52.26
efficientnet_b0 ad 54.32 50.34 45.70 54.34 51.33 49.09 55.80 38.38
efficientnet_b0 ic 19.39 23.46 21.03 19.62 20.95 22.44 17.90 28.77
efficientnet_b0 ag 66.18 70.11 67.02 66.39 67.70 69.27 64.80 75.47
inception_v3 ad 21.27 20.93 19.26 21.05 21.00 5.76 21.13 17.39
inception_v3 ic 64.43 64.11 71.62 64.43 63.96 67.79 64.43 74.04
inception_v3 ag 57.07 56.10 65.30 56.93 56.49 35.43 57.10 69.00
vit_b_16 ad 7.43 7.43 7.33 7.43 7.43 2.73 7.40 6.10
vit_b_16 ic 57.86 52.54 69.27 55.90 49.49 58.64 55.36 76.39
vit_b_16 ag 44.54 40.33 53.30 42.39 37.89 19.22 43.14 57.10
swin_b ad 81.61 55.70 57.03 74.86 78.86 3.71 81.38 4.86
swin_b ic 3.44 6.33 7.43 0.47 1.64 45.27 3.67 37.29
swin_b ag 2.43 3.98 5.19 0.19 0.80 29.45 2.52 25.55
levit_192 ad 88.13 85.00 46.20 72.35 99.49 14.71 84.52 25.19
levit_192 ic 2.89 3.67 32.13 4.69 0.08 28.77 4.85 41.91
levit_192 ag 0.69 0.86 4.60 0.86 0.01 3.20 1.05 6.06
levit_256 ad 21.21 21.53 18.85 18.52 18.34 29.69 20.10 12.60
levit_256 ic 8.37 10.95 14.39 1.88 20.80 11.10 9.07 29.24
levit_256 ag 0.50 0.77 0.71 0.46 0.83 0.59 0.45 1.11
cait_xxs24 ad 64.68 54.74 54.04 84.31 32.32 0.89 56.18 0.94
cait_xxs24 ic 7.58 6.80 11.42 0.78 13.06 74.90 7.97 78.89
cait_xxs24 ag 1.27 1.06 2.18 0.17 1.71 3.88 1.10 6.68
pvt_v2 ad 34.45 48.57 52.73 28.54 6.85 1.84 34.84 3.04
pvt_v2 ic 18.30 8.91 8.21 20.41 48.63 59.11 17.04 67.71
pvt_v2 ag 3.41 2.48 2.47 3.74 5.34 3.39 3.35 8.15
"""

# Table 8: factors vs GradCAM (AD: GradCAM / method; IC, AG, runtime: method / GradCAM), by family.
TABLE8 = {
    "cnn": {"ad": {"scorecam": 1.29, "opticam": 2.16, "cluscam": 2.42},
            "ic": {"scorecam": 1.37, "opticam": 1.19, "cluscam": 1.70},
            "ag": {"scorecam": 1.52, "opticam": 0.81, "cluscam": 1.92},
            "seconds": {"scorecam": 23.43, "opticam": 34.11, "cluscam": 44.24}},
    "vit": {"ad": {"scorecam": 1.36, "opticam": 18.61, "cluscam": 13.60},
            "ic": {"scorecam": 3.27, "opticam": 9.13, "cluscam": 12.10},
            "ag": {"scorecam": 4.30, "opticam": 5.59, "cluscam": 19.39},
            "seconds": {"scorecam": 24.90, "opticam": 43.69, "cluscam": 22.16}},
}

# Table 9: forward passes per method (N internal representations, K groups, K << N).
TABLE9 = {"gradcam": "1", "gradcampp": "1", "scorecam": "N", "ablationcam": "N", "cluscam": "K"}

# Sec. 4.2's statements, by (dataset, family) of Table 2.
SEC4 = {
    "cnn": "On CNNs, ClusCAM outperforms all existing CAM-based methods across both datasets, achieving substantial "
           "improvements with large margins of 17.8% in IC and 24.19% in AG compared to the second-best approach, "
           "except for a slight degradation (1.74%) in AD on the Alzheimer's dataset.",
    "vit/ilsvrc": "On ViTs, ClusCAM surpasses all baselines across both datasets, with large margins of 13.43% in IC "
                  "and 22.22% in AG on the ILSVRC dataset, at the cost of a slight degradation of 1.52% in AD.",
    "vit/alzheimer": "On the Alzheimer's dataset, it consistently achieves the best results across all three metrics.",
}

# The margins Sec. 4.2 states, as ClusCAM minus OptiCAM in percentage points (dataset, family, metric):
# each equals that difference of Table 2's values (e.g. IC 59.58 - 41.78 = 17.80 on ILSVRC CNNs).
MARGINS = {("ilsvrc", "cnn", "ic"): 17.8, ("alzheimer", "cnn", "ag"): 24.19, ("alzheimer", "cnn", "ad"): 1.74,
           ("ilsvrc", "vit", "ic"): 13.43, ("ilsvrc", "vit", "ag"): 22.22, ("ilsvrc", "vit", "ad"): 1.52}


def parse(block: str, methods: tuple[str, ...] = ORDER) -> dict[tuple[str, str], dict[str, float]]:
    """{(key, metric): {method: value}} of a table block."""
    out = {}
    for line in block.strip().splitlines():
        key, metric, *values = line.split()
        if len(values) != len(methods):
            raise ValueError(f"paper table line {line!r}: {len(values)} values for {len(methods)} methods")
        out[key, metric] = dict(zip(methods, map(float, values)))
    return out

# Architectures of this suite whose paper row is another's: EfficientNet-Lite stands in for the paper's
# EfficientNet (B0) in Tables 4, 6 and 7, where the paper states nothing about EfficientNet-Lite.
STAND_INS = {"efficientnet_lite0": "efficientnet_b0", "efficientnet_lite1": "efficientnet_b0",
             "efficientnet_lite2": "efficientnet_b0"}

# App. D.2's statement on localization (Table 4).
D2 = ("ClusCAM demonstrates competitive localization performance on transformer-based backbones, achieving the "
      "lowest localization error.")

# App. D.5's statements on Table 8, by family.
D5 = {"cnn": "On CNNs, ClusCAM ... achieving the best improvements across all three metrics (AD, IC, AG).",
      "vit": "On ViTs, ClusCAM is still improving attribution performance substantially over both baselines "
             "(ScoreCAM, OptiCAM)."}

# App. E's statement on runtime.
APP_E = "Although faster than exhaustive methods like ScoreCAM, AblationCAM, and OptiCAM on ViTs"

# Table 1 (Sec. 4.1): mean over the top 10 ranks of the mean logit difference meta - members, and of Cohen's d.
TABLE1 = {"mean difference": 1.31, "Cohen's d": 0.82}

# App. B / Fig. 8: the temperatures that give the best maps (the paper's own Table 3 has 0.51 for ViT-B).
TAU_RANGE = (0.3, 0.5)

# Sec. 4.4's statements on the ablation (Fig. 5).
SEC44 = {"all": "All ablated variants underperform the full model, both in terms of AD and IC.",
         "levels": "Removing clustering or replacing it ... consistently leads to lower IC scores (typically <45%); "
                   "... when using discarding without temperature scaling (Discarding Softmax), IC falls below 43%.",
         "degradation": "Disabling discarding or removing temperature scaling leads to clear performance degradation "
                        "with up to 18.54% and 23.37% in AD and IC, respectively.",
         "no clustering": "The No clustering variant often outperforms Spectral and HDBSCAN, though it still falls "
                          "short of K-Means++.",
         "temperature": "Temperature softmax shows a slight improvement compared to softmax."}

# Table 2's spreads: the sample standard deviation over the family's six architectures, as printed (the ± values).
TABLE2_STD = """
ilsvrc/cnn ad 4.82 6.47 9.25 4.87 6.36 2.08 4.84 2.40
ilsvrc/cnn ic 4.62 5.59 9.88 4.51 4.74 3.42 5.29 5.82
ilsvrc/cnn ag 4.34 4.66 9.60 5.19 3.93 4.96 6.34 8.01
ilsvrc/vit ad 14.01 13.03 26.64 17.36 12.86 1.72 18.36 4.07
ilsvrc/vit ic 3.27 3.19 12.20 5.24 4.81 10.93 4.43 21.53
ilsvrc/vit ag 1.47 1.77 5.66 8.07 2.66 7.35 0.52 23.91
alzheimer/cnn ad 20.00 18.57 17.32 20.51 18.81 19.51 20.54 14.95
alzheimer/cnn ic 24.65 23.66 27.24 23.07 25.17 19.90 25.12 21.97
alzheimer/cnn ag 26.48 26.84 27.38 24.86 27.17 17.93 26.51 17.42
alzheimer/vit ad 33.32 27.51 20.98 33.24 39.33 11.36 31.98 8.95
alzheimer/vit ic 21.05 18.62 24.04 21.85 22.09 23.16 19.69 21.62
alzheimer/vit ag 17.54 15.77 20.59 16.92 14.88 11.66 16.95 21.15
"""
