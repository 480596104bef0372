# cluscam-bench.  `make demo` runs the demo, `make test` the tests (both set up .venv first).
# The paper: `make paper ILSVRC_ROOT=/data/ilsvrc ALZ_ROOT=/data/alzheimer OUT=/data/out DEVICE=cuda` (PLAN=1: the
# cost first); one table: `make table2 ...`; see README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build to install; on this project's machines these releases are on the local disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

# Sweep settings (override on the command line).
ILSVRC_ROOT ?=
ALZ_ROOT ?=
N ?= 1000
DEVICE ?= auto
BATCH ?= 32
BENCH_ARGS ?=
RUNS ?= runs/paper
RESULTS ?= results
CNNS ?= resnet18,resnet34,resnet50,resnet101,efficientnet_b0,inception_v3
VITS ?= vit_b_16,swin_b,levit_192,levit_256,cait_xxs24,pvt_v2
MODELS ?= $(CNNS),$(VITS)
# The registry's methods (baselines/__init__.py): those of every family, and the ViT-only ones (AG-CAM).
METHODS ?= $(shell $(PY) -m baselines --supports cnn vit)
VIT_METHODS ?= $(shell $(PY) -m baselines --supports vit --lacks cnn)
# Alzheimer: one fine-tuned checkpoint per model, $(ALZ_CKPT)/<model>_alzheimer.pth (scripts/train.py);
# the committed ones (results/checkpoints/README.md) by default.
ALZ_CKPT ?= results/checkpoints
PRECISION ?= fp32
RUN_ARGS ?=
RUN := $(PY) -m benchmarks.run -m run.out_dir=$(RUNS) run.device=$(DEVICE) run.batch_size=$(BATCH) run.n_images=$(N) \
	run.precision=$(PRECISION) $(RUN_ARGS)

.PHONY: reproduction install test demo smoke bench bench-memory tables figures table1 table2 table3 table4 table5 table6 table7 table8 table9 \
        claims sweep-ilsvrc sweep-alzheimer need-ilsvrc need-alz

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q tests

demo: install
	$(PY) -m scripts.demo --device $(DEVICE)

# The whole pipeline on the synthetic set with tiny models, every method, on the CPU (part of the tests too).
smoke: install
	$(PY) -m benchmarks.run -m model=tiny_cnn method=$(METHODS) dataset=synthetic run.device=cpu run.out_dir=runs/smoke
	$(PY) -m benchmarks.run -m model=tiny_vit method=$(VIT_METHODS) dataset=synthetic run.device=cpu run.out_dir=runs/smoke
	$(PY) -m scripts.tables --runs runs/smoke --out runs/smoke/tables --tables 2

# Throughput of every method vs the forward roofline and pytorch-grad-cam (add e.g.
# BENCH_ARGS="--batch 2 --reference-images 1" on a CPU); bench-memory: ScoreCAM at batch 32 on
# the largest maps (chunk sizes from free GPU memory: no out-of-memory).
bench: install
	$(PY) -m benchmarks.perf --device $(DEVICE) --bf16 $(BENCH_ARGS)
bench-memory: install
	$(PY) -m benchmarks.perf --device $(DEVICE) --models resnet101 swin_b --methods scorecam --batch 32 \
		--reference-images 0 --tag scorecam-batch32 $(BENCH_ARGS)

need-ilsvrc:
	@test -n "$(ILSVRC_ROOT)" || { echo "ILSVRC_ROOT is not set: download the ILSVRC2012 validation images with boxes (Kaggle 'ImageNet Object Localization Challenge', or the standard val folder + labels + VOC XML boxes) and run e.g. make $(MAKECMDGOALS) ILSVRC_ROOT=/data/ilsvrc"; exit 2; }
need-alz:
	@test -n "$(ALZ_ROOT)" || { echo "ALZ_ROOT is not set: point it at the Alzheimer MRI data (image folder <root>/{train,test}/<class>/, a save_to_disk copy, parquet files or Falah/Alzheimer_MRI) and train checkpoints with scripts/train.py into $(ALZ_CKPT)/"; exit 2; }

sweep-ilsvrc: install need-ilsvrc
	$(RUN) model=$(MODELS) method=$(METHODS) dataset=ilsvrc dataset.root=$(ILSVRC_ROOT)
sweep-alzheimer: install need-alz
	for m in $$(echo $(MODELS) | tr , ' '); do \
	  $(RUN) model=$$m method=$(METHODS) dataset=alzheimer dataset.root=$(ALZ_ROOT) model.checkpoint=$(ALZ_CKPT)/$${m}_alzheimer.pth dataset.exclude=$(ALZ_CKPT)/$${m}_alzheimer.json || exit 1; done

# Alg. 2-3 select on images the tables do not evaluate: ILSVRC's SELECT_N images after the evaluated
# [0, N); on Alzheimer, SELECT_N of each training report's validation ids (left out of Table 7), the first in
# dataset.shuffle's random order (the reproduction's Table 3; the paper's run selects in `make table3`).
SELECT_N ?= $(N)
# Their tables go beside the run's rows (the reproduction names results/tables).
SELECT_OUT ?= $(RUNS)/tables
.PHONY: cluster-tests reproduction-beyond select-ilsvrc select-alzheimer reproduction-figures reproduction-table3 reproduction-tables paper rehearsal
select-ilsvrc: install need-ilsvrc
	for m in $$(echo $(MODELS) | tr , ' '); do \
	  $(PY) -m scripts.select_hparams model=$$m dataset=ilsvrc dataset.root=$(ILSVRC_ROOT) run.start=$(N) run.n_images=$(SELECT_N) run.device=$(DEVICE) --evaluated $(N) --out $(SELECT_OUT) || exit 1; done
select-alzheimer: install need-alz
	for m in $$(echo $(MODELS) | tr , ' '); do \
	  $(PY) -m scripts.select_hparams model=$$m dataset=alzheimer dataset.root=$(ALZ_ROOT) model.checkpoint=$(ALZ_CKPT)/$${m}_alzheimer.pth run.n_images=$(SELECT_N) run.device=$(DEVICE) --val-ids $(ALZ_CKPT)/$${m}_alzheimer.json --out $(SELECT_OUT)/alzheimer || exit 1; done

# The paper's protocol (scripts/reproduce.py, conf/pipeline/paper.yaml): `make paper` runs every step
# (fine-tuning the missing Alzheimer checkpoints, Table 3, every cell, Table 1, runtime, ablations) and
# renders Tables 1-9, the figures and REPRODUCTION.md into OUT; `make table2` (table1 ... table9, tables,
# figures, claims) runs only the steps its output needs.  Resumable: the same command continues.
# PLAN=1 prints the plan (every job's images, passes, device time, disk) and exits; PERF=<csv> prices it
# from a benchmarks.perf run instead of measuring.  PIPELINE_ARGS: more settings, e.g. "ilsvrc.images=100"; N=<n> on
# the command line: n ILSVRC and n Alzheimer test images per cell.  Nothing goes to results/ unless OUT names it.
OUT ?= $(RUNS)
PIPELINE_ARGS ?=
PAPER_MODELS ?= $(MODELS)
REPRODUCE = $(PY) -m scripts.reproduce $(1) out=$(OUT) device=$(DEVICE) precision=$(PRECISION) batch_size=$(BATCH) \
	models=$(PAPER_MODELS) $(if $(ILSVRC_ROOT),ilsvrc_root=$(ILSVRC_ROOT)) $(if $(ALZ_ROOT),alzheimer_root=$(ALZ_ROOT)) \
	$(if $(CHECKPOINTS),checkpoints=$(CHECKPOINTS)) $(if $(PLAN),--plan) $(if $(PERF),--perf $(PERF)) \
	$(if $(filter command line,$(origin N)),ilsvrc.images=$(N) alzheimer.images=$(N)) $(PIPELINE_ARGS)
paper table1 table2 table3 table4 table5 table6 table7 table8 table9 figures claims: install
	$(call REPRODUCE,$@)
tables: install
	$(call REPRODUCE,table1 table2 table3 table4 table5 table6 table7 table8 table9)
# The opt-in cluster tests: a Ray cluster (head + worker node) and a single-node SLURM cluster started here,
# tests/test_sweep.py through each, logs in results/cluster/ (as root; needs the [sweep] extra and SLURM:
# scripts/cluster/slurm-local.sh install).
cluster-tests: install
	$(PY) -m pip install -q -e '.[dev,sweep]'
	bash scripts/cluster/test-clusters.sh $(PY)
# The dress rehearsal of `make paper` offline on the CPU: random weights in the hub caches, tiny sizes, every
# step and renderer (scripts/rehearse.py; REHEARSAL_MODELS=resnet18,levit_192 for two architectures).
REHEARSAL ?= /tmp/cluscam-rehearsal
REHEARSAL_MODELS ?= $(MODELS)
rehearsal: install
	$(PY) -m scripts.rehearse --work $(REHEARSAL) --ilsvrc-root $(SHARED)/ilsvrc_val --alzheimer-root $(SHARED)/alzheimer_mri \
		models=$(REHEARSAL_MODELS) $(REHEARSAL_ARGS)

# The offline reproduction committed in results/ (results/README.md): every model with real weights
# here, sized for a 2-core CPU and resumable (run it again to continue; finished cells only re-render),
# cheapest first so that each session completes whole tables, ScoreCAM's cells (which every
# verdict of the claims report needs) before the few-pass methods' larger image sets.
# ScoreCAM: fp32 on SCORECAM_PAIRED images (in runs-precision, outside the tables) beside bf16 on the
# same images (scripts/precision.py: the paired check of bf16), then bf16 for the tables (fp32 where said).
SHARED ?= ../shared/data
LITES ?= efficientnet_lite0,efficientnet_lite1,efficientnet_lite2
ALZ_MODELS ?= resnet18,levit_192,efficientnet_lite0,efficientnet_lite1,efficientnet_lite2
# The methods of tens of passes, not thousands (every method but ScoreCAM): first on the common sets beside
# ScoreCAM, then Lite0 on all 1,000 ILSVRC images and each Alzheimer model on its whole test split less its
# validation ids (N=null).
FEW_PASSES ?= gradcam,gradcampp,shapleycam,ablationcam,reciprocam,cluscam,opticam
SCORECAM_PAIRED ?= 20
# The bf16 checks on Alzheimer's: one model of each family (ResNet-18 and EfficientNet-Lite0 for the CNNs,
# LeViT-192); on ILSVRC, Lite0 checks the EfficientNet family.
PAIRED_ALZ ?= resnet18,levit_192,efficientnet_lite0
# Alzheimer ScoreCAM cells in fp32, the other ALZ_MODELS in bf16: EfficientNet-Lite2's ran on a CPU without
# native bf16 (AVX2 only), where bf16 autocast is emulated and 6.6x slower than fp32.
ALZ_FP32_SCORECAM ?= efficientnet_lite2
REPRO := $(MAKE) RUNS=$(RESULTS)/runs DEVICE=$(DEVICE) BATCH=8 RUN_ARGS=run.workers=0 ILSVRC_ROOT=$(SHARED)/ilsvrc_val ALZ_ROOT=$(SHARED)/alzheimer_mri
reproduction: install
	$(REPRO) sweep-ilsvrc MODELS=efficientnet_lite0 METHODS=$(FEW_PASSES) N=200
	$(REPRO) sweep-ilsvrc MODELS=efficientnet_lite0 METHODS=scorecam N=$(SCORECAM_PAIRED) RUNS=$(RESULTS)/runs-precision
	$(REPRO) sweep-ilsvrc MODELS=efficientnet_lite0 METHODS=scorecam N=$(SCORECAM_PAIRED) PRECISION=bf16
	$(PY) -m scripts.precision --runs $(RESULTS)/runs-precision $(RESULTS)/runs --dataset ilsvrc \
		--model efficientnet_lite0 --method scorecam --out $(RESULTS)/tables
	$(REPRO) sweep-alzheimer MODELS=$(ALZ_MODELS) METHODS=$(FEW_PASSES) N=100
	$(REPRO) sweep-ilsvrc MODELS=efficientnet_lite1,efficientnet_lite2 METHODS=$(FEW_PASSES) N=100
	$(REPRO) sweep-ilsvrc MODELS=efficientnet_lite0 METHODS=scorecam N=200 PRECISION=bf16
	$(REPRO) sweep-alzheimer MODELS=resnet18 METHODS=$(FEW_PASSES) N=100 RUNS=$(RESULTS)/runs-baseline RUN_ARGS="run.workers=0 run.baseline=black"
	$(MAKE) reproduction-figures
	$(MAKE) reproduction-table3 ALZ_MODELS=levit_192,resnet18 LITES=efficientnet_lite0
	$(REPRO) sweep-ilsvrc MODELS=efficientnet_lite1,efficientnet_lite2 METHODS=scorecam N=100 PRECISION=bf16
	$(REPRO) sweep-alzheimer MODELS=$(call without,$(ALZ_MODELS),$(ALZ_FP32_SCORECAM)) METHODS=scorecam N=100 PRECISION=bf16
	$(REPRO) sweep-alzheimer MODELS=$(ALZ_FP32_SCORECAM) METHODS=scorecam N=100
	$(REPRO) sweep-alzheimer MODELS=$(PAIRED_ALZ) METHODS=scorecam N=$(SCORECAM_PAIRED) RUNS=$(RESULTS)/runs-precision
	for m in $$(echo $(PAIRED_ALZ) | tr , ' '); do $(PY) -m scripts.precision --runs $(RESULTS)/runs-precision $(RESULTS)/runs \
		--dataset alzheimer --model $$m --method scorecam --out $(RESULTS)/tables || exit 1; done
	$(REPRO) sweep-ilsvrc MODELS=efficientnet_lite0 METHODS=$(FEW_PASSES) N=1000
	$(REPRO) sweep-alzheimer MODELS=$(ALZ_MODELS) METHODS=$(FEW_PASSES) N=null
	$(MAKE) reproduction-table3
	$(MAKE) reproduction-tables

# Beyond the paper (Table 10, issue 30): every method's maps on the reproduction's models scored by Deletion /
# Insertion and ROAD beside AD / IC / AG (results/runs-faithfulness), the randomization check on the first
# RANDOM_IMAGES images of each architecture, then Table 10 and REPRODUCTION.md's section.  Sized for a 2-core
# CPU: BEYOND_STEP pixels per curve step (25 steps at 224 px, about ClusCAM's own passes, against RISE's 224);
# ROAD at BEYOND_PERCENTILES (pytorch-grad-cam's 10..90 on a GPU).  ScoreCAM (1,281 passes per map on a Lite)
# runs in bf16 as in the reproduction's tables, and its randomization check (a map per stage: 13 x 1,281
# passes per image on a Lite) on the first RANDOM_SCORECAM_IMAGES images only.  Every cell first on its first
# BEYOND_FIRST images (a whole Table 10 early), then on the reproduction's common sets: BEYOND_LITE0_N ILSVRC
# images of Lite0, BEYOND_N of Lite1/2 and of each Alzheimer model.  Cheapest first, so that each session
# completes whole cells.  Resumable: a larger count computes only the images a cell lacks.
BEYOND_FIRST ?= 40
BEYOND_LITE0_N ?= 200
BEYOND_N ?= 100
BEYOND_STEP ?= 2048
BEYOND_PERCENTILES ?= [20,40,60,80]
RANDOM_IMAGES ?= 20
RANDOM_SCORECAM_IMAGES ?= 5
BEYOND_METHODS ?= $(shell $(PY) -m baselines --supports cnn vit)
BEYOND := $(RESULTS)/runs-faithfulness
FAITHFULNESS := run.workers=0 'metrics.faithfulness=[deletion,insertion,road]' metrics.curve_step=$(BEYOND_STEP) \
	'metrics.road_percentiles=$(BEYOND_PERCENTILES)'
RANDOMIZE := $(PY) -m scripts.randomization run.out_dir=$(BEYOND) run.device=$(DEVICE) run.batch_size=8 run.workers=0 \
	--no-progress
# $(call randomize,<models>,<dataset>,<methods>,<images>,<extra overrides>): the randomization check of each model x method.
randomize = for m in $$(echo $(1) | tr , ' '); do for meth in $$(echo $(3) | tr , ' '); do \
	  $(RANDOMIZE) model=$$m method=$$meth run.n_images=$(4) $(2) $(5) || exit 1; done; done
RANDOM_ILSVRC := dataset=ilsvrc dataset.root=$(SHARED)/ilsvrc_val
RANDOM_ALZ := dataset=alzheimer dataset.root=$(SHARED)/alzheimer_mri model.checkpoint=$(ALZ_CKPT)/$${m}_alzheimer.pth \
	dataset.exclude=$(ALZ_CKPT)/$${m}_alzheimer.json
BEYOND_SWEEP = $(REPRO) sweep-$(1) MODELS=$(2) METHODS=$(3) N=$(4) RUNS=$(BEYOND) RUN_ARGS="$(FAITHFULNESS)" $(5)
FEW_BEYOND = $(call without,$(BEYOND_METHODS),scorecam)
LITE0 = $(firstword $(subst $(comma),$(space),$(LITES)))
OTHER_LITES = $(call without,$(LITES),$(LITE0))
reproduction-beyond: install
	$(call BEYOND_SWEEP,ilsvrc,$(LITES),$(FEW_BEYOND),$(BEYOND_FIRST))
	$(call BEYOND_SWEEP,alzheimer,$(ALZ_MODELS),$(FEW_BEYOND),$(BEYOND_FIRST))
	$(call randomize,$(LITES),$(RANDOM_ILSVRC),$(FEW_BEYOND),$(RANDOM_IMAGES))
	$(call randomize,$(ALZ_MODELS),$(RANDOM_ALZ),$(FEW_BEYOND),$(RANDOM_IMAGES))
	$(call BEYOND_SWEEP,ilsvrc,$(LITES),scorecam,$(BEYOND_FIRST),PRECISION=bf16)
	$(call BEYOND_SWEEP,alzheimer,$(ALZ_MODELS),scorecam,$(BEYOND_FIRST),PRECISION=bf16)
	$(call randomize,$(LITES),$(RANDOM_ILSVRC),scorecam,$(RANDOM_SCORECAM_IMAGES),run.precision=bf16)
	$(call randomize,$(ALZ_MODELS),$(RANDOM_ALZ),scorecam,$(RANDOM_SCORECAM_IMAGES),run.precision=bf16)
	$(call BEYOND_SWEEP,ilsvrc,$(LITE0),$(FEW_BEYOND),$(BEYOND_LITE0_N))
	$(call BEYOND_SWEEP,ilsvrc,$(OTHER_LITES),$(FEW_BEYOND),$(BEYOND_N))
	$(call BEYOND_SWEEP,alzheimer,$(ALZ_MODELS),$(FEW_BEYOND),$(BEYOND_N))
	$(call BEYOND_SWEEP,ilsvrc,$(LITE0),scorecam,$(BEYOND_LITE0_N),PRECISION=bf16)
	$(call BEYOND_SWEEP,ilsvrc,$(OTHER_LITES),scorecam,$(BEYOND_N),PRECISION=bf16)
	$(call BEYOND_SWEEP,alzheimer,$(ALZ_MODELS),scorecam,$(BEYOND_N),PRECISION=bf16)
	$(PY) -m scripts.beyond --runs $(BEYOND) --out $(RESULTS)/tables

# Every table and the claims report of the reproduction, from results/runs (tables/: the seven methods of
# FEW_PASSES on each architecture's largest common image set; all-methods/: with ScoreCAM, on the images it
# has; baseline-black/: ResNet-18 on Alzheimer's with masked pixels black).
comma := ,
space := $(subst ,, )
# $(call without,a$(comma)b$(comma)c,b): the comma list $(1) less the names of the comma list $(2) (a,c).
without = $(subst $(space),$(comma),$(filter-out $(subst $(comma),$(space),$(2)),$(subst $(comma),$(space),$(1))))
reproduction-tables: install
	$(PY) -m scripts.tables --runs $(RESULTS)/runs --out $(RESULTS)/tables --methods $(subst $(comma), ,$(FEW_PASSES))
	$(PY) -m scripts.tables --runs $(RESULTS)/runs --out $(RESULTS)/tables/all-methods
	$(PY) -m scripts.tables --runs $(RESULTS)/runs-baseline --out $(RESULTS)/tables/baseline-black --tables 7
	$(PY) -m scripts.claims --runs $(RESULTS)/runs --out $(RESULTS)/REPRODUCTION.md $(if $(wildcard $(BEYOND)),--faithfulness-runs $(BEYOND))

# Table 1 and the figures from the reproduction's models: EfficientNet-Lite0 on ILSVRC (Table 1 on TABLE1_IMAGES
# images, Figs. 2 and 9 from its rows; Figs. 3, 5, 6, 8; Fig. 6 also for the Alzheimer models, in
# figures/alzheimer/; Fig. 5 on FIG5_IMAGES images, its rows in results/runs-ablation) and the trained LeViT-192
# on Alzheimer's for Fig. 4 (the paper's ViT-B has no trained weights here).  Table 1, App. D.1 and Fig. 5 need
# 200 images for a verdict (scripts/claims.py --min-study-images).
TABLE1_IMAGES ?= 200
FIG5_IMAGES ?= 200
FIGS := $(PY) -m scripts.figures --out $(RESULTS)/figures
FIG_LITE0 := model=efficientnet_lite0 dataset=ilsvrc dataset.root=$(SHARED)/ilsvrc_val run.device=$(DEVICE) run.workers=0
reproduction-figures: install
	$(PY) -m scripts.table1 $(FIG_LITE0) run.out_dir=$(RESULTS)/runs run.n_images=$(TABLE1_IMAGES) run.batch_size=8 \
		--out $(RESULTS)/tables --no-progress
	$(FIGS) fig2 $(FIG_LITE0) run.out_dir=$(RESULTS)/runs
	$(FIGS) fig9 $(FIG_LITE0) run.out_dir=$(RESULTS)/runs
	$(FIGS) fig6 --runs $(RESULTS)/runs --dataset ilsvrc --log
	$(FIGS) fig6 --runs $(RESULTS)/runs --dataset alzheimer --log --out $(RESULTS)/figures/alzheimer
	$(FIGS) fig8 $(FIG_LITE0)
	$(FIGS) fig3 $(FIG_LITE0) --run
	$(FIGS) fig4 model=levit_192 dataset=alzheimer dataset.root=$(SHARED)/alzheimer_mri run.device=$(DEVICE) run.workers=0 \
		model.checkpoint=$(ALZ_CKPT)/levit_192_alzheimer.pth dataset.exclude=$(ALZ_CKPT)/levit_192_alzheimer.json --run
	$(FIGS) fig5 $(FIG_LITE0) run.out_dir=$(RESULTS)/runs-ablation --images $(FIG5_IMAGES) --run

# Table 3 (Alg. 2-3, Eq. 10) for the reproduction's models on SELECT_IMAGES images each, disjoint from
# the evaluated ones: ILSVRC images after each Lite's evaluated range (Lite0: 200, Lite1/2: 100), a random
# sample of each Alzheimer model's validation ids.
SELECT_IMAGES ?= 20
reproduction-table3: install
	for m in $$(echo $(LITES) | tr , ' '); do n=$$([ $$m = efficientnet_lite0 ] && echo 200 || echo 100); \
	  $(MAKE) select-ilsvrc MODELS=$$m N=$$n SELECT_N=$(SELECT_IMAGES) ILSVRC_ROOT=$(SHARED)/ilsvrc_val RUN_ARGS= \
	    SELECT_OUT=$(RESULTS)/tables || exit 1; done
	$(MAKE) select-alzheimer MODELS=$(ALZ_MODELS) SELECT_N=$(SELECT_IMAGES) ALZ_ROOT=$(SHARED)/alzheimer_mri SELECT_OUT=$(RESULTS)/tables
