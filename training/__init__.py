"""Offline training and evaluation of the model the stream runs (datasets, feature extraction,
LoRA fine-tuning, metrics). Its modules arrive with the training issue; the package exists now so
that the layout and the installed distribution are the ones the project keeps."""
