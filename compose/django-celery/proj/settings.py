import os

import dj_database_url

SECRET_KEY = "not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "proj"]
ROOT_URLCONF = "proj.urls"
DATABASES = {"default": dj_database_url.config(default=os.environ.get("DATABASE_URL"))}
CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
CELERY_RESULT_BACKEND = os.environ["CELERY_BROKER_URL"]
USE_TZ = True
