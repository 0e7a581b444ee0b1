"""Evaluation metrics of the FGLA protocol: masked PSNR/SSIM and Fréchet distances."""
