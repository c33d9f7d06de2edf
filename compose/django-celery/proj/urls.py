from django.contrib.auth.models import User
from django.http import JsonResponse
from django.urls import path

from .celery import add


def index(request):
    User.objects.get_or_create(username="visitor")
    total = add.delay(2, 3).get(timeout=30)
    return JsonResponse({"users": User.objects.count(), "celery": total})


urlpatterns = [path("", index)]
